from __future__ import annotations

from pathlib import Path

import pytest

ROOT = str(Path(__file__).resolve().parent.parent)


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_a_skipped_test_fails_the_run(
    pytester: pytest.Pytester, monkeypatch, workers: list[str]
) -> None:
    """Also as `make test` runs the suite: in xdist workers, whose reports reach the
    controller's hooks."""
    monkeypatch.delenv("BLOCKDATA_ALLOW_SKIPS", raising=False)
    monkeypatch.setenv("PYTHONPATH", ROOT)
    pytester.makepyfile(
        """
        import pytest

        def test_runs():
            assert True

        @pytest.mark.skip(reason="no database")
        def test_skipped():
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "tests.noskip", *workers)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*1 test(s) skipped, and skips are not allowed*"])


def test_a_clean_run_passes(pytester: pytest.Pytester, monkeypatch) -> None:
    monkeypatch.setenv("PYTHONPATH", ROOT)
    pytester.makepyfile("def test_runs():\n    assert True\n")
    result = pytester.runpytest_subprocess("-p", "tests.noskip")
    assert result.ret == pytest.ExitCode.OK
