"""Cases (案件): the lifecycle of service requests and enforcement cases (全响应).

`machine` is the pure state machine; `tables` declares `cases` and `case_history`;
`store` is the one write path (`create_case`, `transition`)."""

from layers.cases.machine import (
    ACTIONS,
    RATINGS,
    ROLES,
    STATES,
    Case,
    Refused,
    Transition,
    apply,
    replay,
)
from layers.cases.store import Actor, case_of, create_case, history, transition, transitions
from layers.cases.tables import case_history, case_photos, cases

__all__ = [
    "ACTIONS",
    "RATINGS",
    "ROLES",
    "STATES",
    "Actor",
    "Case",
    "Refused",
    "Transition",
    "apply",
    "case_history",
    "case_of",
    "case_photos",
    "cases",
    "create_case",
    "history",
    "replay",
    "transition",
    "transitions",
]
