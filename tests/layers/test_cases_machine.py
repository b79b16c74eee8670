"""The case state machine, pure: hypothesis drives any sequence of actions by any role.

The expected outcome of each step comes from the table below, written from the issue's and
DESIGN.md's description of the lifecycle, not from `layers.cases.machine`."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from layers.cases import Case, Refused, Transition, apply, replay

UTC = dt.UTC
START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
UNITS = ["s1-city", "s1-police", "district-market"]
ROLES = [
    "district",
    "commander",
    "clerk",
    "department",
    "analyst",
    "planner",
    "grid_officer",
    "assessor",
]
REACHED: set[str] = set()  # states the stateful runs reached (checked below)
CENTRE = {"district", "commander", "clerk"}

# (state, action) → the state after it; absent: the state forbids the action (409)
NEXT = {
    ("received", "dispatch"): "dispatched",
    ("dispatched", "accept"): "accepted",
    ("dispatched", "return"): "returned",
    ("dispatched", "redispatch"): "dispatched",
    ("returned", "redispatch"): "dispatched",
    ("accepted", "contact"): "contacted",
    ("accepted", "resolve"): "resolved",
    ("contacted", "resolve"): "resolved",
    ("accepted", "return"): "returned",
    ("resolved", "callback"): "called_back",
    ("called_back", "close"): "closed",
    ("called_back", "reopen"): "dispatched",  # only after 不满意 (checked below)
}
for s in ("accepted", "contacted"):
    for a in ("extend", "approve_extension", "refuse_extension"):
        NEXT[(s, a)] = s
for s in ("received", "dispatched", "accepted", "contacted", "resolved", "called_back", "returned"):
    NEXT[(s, "supervise")] = s
# action → the case's timestamp it sets
STAMPS = {
    "accept": "accepted_at",
    "contact": "contacted_at",
    "resolve": "resolved_at",
    "callback": "called_back_at",
    "close": "closed_at",
}
WHO = {
    "dispatch": CENTRE,
    "redispatch": CENTRE,
    "callback": CENTRE,
    "approve_extension": CENTRE,
    "refuse_extension": CENTRE,
    "reopen": CENTRE,
    "close": CENTRE,
    "supervise": {"district", "commander"},
    "accept": {"department"},
    "contact": {"department"},
    "resolve": {"department"},
    "return": {"department"},
    "extend": {"department"},
}


def fields_for(action: str, now: dt.datetime, draw: Any) -> dict[str, Any]:
    """Valid fields for `action` (as the write path would pass them)."""
    due = (now + dt.timedelta(days=draw(st.integers(1, 20)))).isoformat()
    if action in ("dispatch", "redispatch"):
        main = draw(st.sampled_from(UNITS))
        others = draw(st.lists(st.sampled_from([u for u in UNITS if u != main]), unique=True))
        return {"main_unit": main, "assisting_units": others, "due_at": due}
    if action == "reopen":
        return {"due_at": due}
    if action == "resolve":
        return {"result": "已修复 fixed"}
    if action == "callback":
        return {
            "valid": draw(st.booleans()),
            "contacted": draw(st.booleans()),
            "solved": draw(st.booleans()),
            "rating": draw(st.sampled_from(["满意", "基本满意", "不满意"])),
        }
    if action == "return":
        return {"reason": "非本单位职责 not ours"}
    if action == "extend":
        return {"hours": draw(st.integers(1, 200))}
    if action == "supervise":
        return {"note": "请加快 hurry"}
    return {}


class CaseMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.case = Case()
        self.history: list[Transition] = []
        self.now = START

    @rule(minutes=st.integers(1, 3000), data=st.data())
    def act(self, minutes: int, data: Any) -> None:
        """Any action, role and unit, biased towards moves the state and role allow so that
        the walks go deep."""
        self.now += dt.timedelta(minutes=minutes)
        before = self.case
        possible = sorted(a for (s, a) in NEXT if s == before.state) or sorted(WHO)
        action = data.draw(st.sampled_from(possible) | st.sampled_from(sorted(WHO)))
        role = data.draw(st.sampled_from(sorted(WHO[action])) | st.sampled_from(ROLES))
        unit = data.draw(st.just(before.main_unit) | st.sampled_from([*UNITS, None]))
        fields = fields_for(action, self.now, data.draw)
        target = NEXT.get((before.state, action))
        if target is not None and action == "extend" and before.extension_due_at is not None:
            target = None
        if target is not None and action.endswith("_extension") and before.extension_due_at is None:
            target = None
        if target is not None and action == "reopen" and before.rating != "不满意":
            target = None
        if role not in WHO[action] or (
            role == "department" and (unit is None or unit != before.main_unit)
        ):
            expected = 403
        elif target is None:
            expected = 409
        else:
            expected = 0
        try:
            after = apply(before, action, role, fields, self.now, unit=unit)
        except Refused as exc:
            assert exc.status == expected, (before.state, action, role, exc.message)
            assert any(ord(ch) > 0x2E80 for ch in exc.message), exc.message  # Chinese first
            return
        assert expected == 0, (before.state, action, role, "applied")
        assert after.state == target
        self.history.append(Transition(action, role, self.now, fields, unit))
        self.case = after
        REACHED.add(after.state)
        if action in ("dispatch", "redispatch", "reopen"):
            assert after.due_at == dt.datetime.fromisoformat(fields["due_at"])
            assert after.dispatched_at == self.now
            assert after.main_unit == fields.get("main_unit", before.main_unit)
        stamp = STAMPS.get(action)
        if stamp is not None:
            assert getattr(after, stamp) == self.now, (action, stamp)
        if action == "reopen":
            assert after.reopen_count == before.reopen_count + 1
        if action == "extend":
            assert after.extension_due_at == before.due_at + dt.timedelta(hours=fields["hours"])
        if action == "approve_extension":
            assert after.due_at == before.extension_due_at and after.extension_due_at is None
        if action == "supervise":
            assert after.supervised and after.supervise_note == fields["note"]

    @invariant()
    def history_replays_to_the_case(self) -> None:
        assert replay(self.history) == self.case


TestCaseMachine = CaseMachine.TestCase
TestCaseMachine.settings = settings(
    max_examples=100,
    derandomize=True,  # the same walks on every run: a CI failure reproduces
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_a_full_life_reaches_every_state() -> None:
    """The happy path, a return, an extension and a reopen, by the roles that take them."""
    t = START
    steps = [
        (
            "dispatch",
            "clerk",
            None,
            {"main_unit": "s1-city", "due_at": (t + dt.timedelta(days=3)).isoformat()},
        ),
        ("return", "department", "s1-city", {"reason": "不归我们 not ours"}),
        (
            "redispatch",
            "commander",
            None,
            {
                "main_unit": "s1-police",
                "assisting_units": ["s1-city"],
                "due_at": (t + dt.timedelta(days=5)).isoformat(),
            },
        ),
        ("accept", "department", "s1-police", {}),
        ("extend", "department", "s1-police", {"due_at": (t + dt.timedelta(days=9)).isoformat()}),
        ("approve_extension", "clerk", None, {}),
        ("contact", "department", "s1-police", {}),
        ("supervise", "district", None, {"note": "尽快 soon"}),
        ("resolve", "department", "s1-police", {"result": "已处理 done"}),
        (
            "callback",
            "clerk",
            None,
            {"valid": True, "contacted": True, "solved": False, "rating": "不满意"},
        ),
        ("reopen", "clerk", None, {"due_at": (t + dt.timedelta(days=12)).isoformat()}),
        ("accept", "department", "s1-police", {}),
        ("resolve", "department", "s1-police", {"result": "再次处理 again"}),
        (
            "callback",
            "clerk",
            None,
            {"valid": True, "contacted": True, "solved": True, "rating": "满意"},
        ),
        ("close", "clerk", None, {}),
    ]
    seen = []
    case = Case()
    for i, (action, role, unit, fields) in enumerate(steps):
        case = apply(case, action, role, fields, t + dt.timedelta(hours=i), unit=unit)
        seen.append(case.state)
    assert seen[-1] == "closed"
    assert set(seen) == {
        "dispatched",
        "returned",
        "accepted",
        "contacted",
        "resolved",
        "called_back",
        "closed",
    }
    assert case.main_unit == "s1-police" and case.assisting_units == ("s1-city",)
    assert case.reopen_count == 1 and case.supervised and case.rating == "满意"
    assert case.due_at == t + dt.timedelta(days=12)


@pytest.mark.parametrize(
    ("action", "fields", "name"),
    [
        ("dispatch", {"due_at": START.isoformat()}, "main_unit"),
        ("dispatch", {"main_unit": "a", "due_at": "2026-03-02T09:00"}, "due_at"),
        (
            "dispatch",
            {"main_unit": "a", "assisting_units": ["a"], "due_at": START.isoformat()},
            "assisting_units",
        ),
    ],
)
def test_bad_fields_are_400_naming_the_field(
    action: str, fields: dict[str, Any], name: str
) -> None:
    with pytest.raises(Refused) as err:
        apply(Case(), action, "clerk", fields, START)
    assert err.value.status == 400 and err.value.details["field"] == name


def test_refusals_say_why_in_chinese_then_english() -> None:
    with pytest.raises(Refused) as err:
        apply(Case(), "accept", "department", {}, START, unit=None)
    assert err.value.status == 403 and err.value.message.startswith("只有主办单位")
    with pytest.raises(Refused) as err:
        apply(Case(), "close", "clerk", {}, START)
    assert err.value.status == 409
    assert err.value.message == "受理状态下不能归档 cannot close a case in state received"


def test_the_stateful_runs_reach_every_state() -> None:
    """Runs after TestCaseMachine (file order): the random walks went everywhere."""
    if not REACHED:
        CaseMachine.TestCase("runTest").runTest()
    assert {
        "received",
        "dispatched",
        "accepted",
        "contacted",
        "resolved",
        "called_back",
        "closed",
        "returned",
    } == REACHED
