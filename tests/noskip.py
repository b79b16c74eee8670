"""pytest plugin: a skipped test fails the run, so nothing silently does not run in CI.

Set BLOCKDATA_ALLOW_SKIPS=1 to allow skips on a developer's machine.
"""

from __future__ import annotations

import os

import pytest

_skipped: list[str] = []


def _allowed() -> bool:
    return os.environ.get("BLOCKDATA_ALLOW_SKIPS") == "1"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _skipped and not _allowed():
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    if _skipped and not _allowed():
        terminalreporter.write_line(
            f"FAILED: {len(_skipped)} test(s) skipped, and skips are not allowed: "
            + ", ".join(_skipped[:5]),
            red=True,
        )
