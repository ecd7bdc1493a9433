"""Business metrics of the workflows (issue 9 item 3): one list of names for the worker, the dashboard and tests.

Every counter goes through `workflow.metric_meter()`, the SDK's replay-safe meter: nothing is counted while a
workflow replays its history (after a cache eviction, on another worker, or in the Replayer), so each business
event is counted once, in the run that lived it. Counters count events, never states: a continue-as-new carries
the state on and counts nothing again. The SDK adds the labels `namespace`, `task_queue` and `workflow_type`;
ours are few and bounded (never an id): `kind` (mount / xingguang / violation / privacy: escalations of data
subject requests, security incidents and account statement disputes) and, where named below, one more.

"Escalations open" is `escalations_opened - escalations_closed` summed over workers (a workflow that becomes
escalated on one worker and is settled on another still nets to zero in the sum). A gauge would not do: a
gauge keeps the last value written by any workflow, not a count over many. After a worker restarts its counters
start from zero, so the difference is exact for the workers' current lifetimes; the Temporal UI filter
`escalated = true` lists the escalated workflows themselves.

The milestones (not the per-batch counts) also write one log line through workflows.logs (replay-safe).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from temporalio import workflow

from workflows.logs import wlog

PREFIX = "xingtu_"
Kind = Literal["mount", "xingguang", "violation", "privacy"]


@dataclass(frozen=True)
class Counter:
    name: str
    description: str
    labels: tuple[str, ...] = ("kind",)
    unit: str | None = None


TASKS_PUBLISHED = Counter(f"{PREFIX}tasks_published_total", "tasks published (mount) or ordered (xingguang)")
FROZEN_FEN = Counter(f"{PREFIX}frozen_fen_total", "fen frozen from clients' balances at publication/order",
                     unit="fen")
PIECES_MOUNTED = Counter(f"{PREFIX}pieces_mounted_total",
                         "pieces of content taken into a task: mounted (mount) or selected by the provider "
                         "(xingguang)")
CONVERSIONS_COUNTED = Counter(f"{PREFIX}conversions_counted_total",
                              "conversions (mount) or billable events (xingguang) granted against the budget")
CONVERSIONS_RELEASED = Counter(f"{PREFIX}conversions_released_total",
                               "counted conversions given back to the budget (voided, or outside the interval)")
PIECES_SETTLED = Counter(f"{PREFIX}pieces_settled_total", "pieces settled (outcome=settled) or closed unpaid",
                         ("kind", "outcome"))
SETTLED_FEN = Counter(f"{PREFIX}settled_fen_total",
                      "fen paid at settlement, by recipient: to=payee (creator or agency), platform, provider, "
                      "promotion", ("kind", "to"), unit="fen")
REFUNDED_FEN = Counter(f"{PREFIX}refunded_fen_total", "fen given back to clients when a task closed", unit="fen")
DISPUTES_RAISED = Counter(f"{PREFIX}disputes_raised_total",
                          "disputes raised: dispute=fee (mount), objection, data (xingguang), appeal (violation)",
                          ("kind", "dispute"))
DISPUTES_RESOLVED = Counter(f"{PREFIX}disputes_resolved_total", "disputes resolved or decided by an operator",
                            ("kind", "dispute"))
ESCALATIONS_OPENED = Counter(f"{PREFIX}escalations_opened_total",
                             "workflows that became escalated (search attribute escalated = true)")
ESCALATIONS_CLOSED = Counter(f"{PREFIX}escalations_closed_total", "escalated workflows no longer escalated")
# a settlement, refund or payment that could not complete and was escalated (workflows/escalation.py).
MONEY_STALLS = Counter(f"{PREFIX}money_stalls_total",
                       "money activities escalated because they could not complete (they keep retrying)")

COUNTERS: tuple[Counter, ...] = (
    TASKS_PUBLISHED, FROZEN_FEN, PIECES_MOUNTED, CONVERSIONS_COUNTED, CONVERSIONS_RELEASED, PIECES_SETTLED,
    SETTLED_FEN, REFUNDED_FEN, DISPUTES_RAISED, DISPUTES_RESOLVED, ESCALATIONS_OPENED, ESCALATIONS_CLOSED,
    MONEY_STALLS,
)
NAMES: tuple[str, ...] = tuple(c.name for c in COUNTERS)


def add(counter: Counter, value: int, **labels: str) -> None:
    """Adds `value` to `counter` from workflow code (skipped while replaying, by the SDK's meter)."""
    if value <= 0:
        return
    assert set(labels) == set(counter.labels), f"{counter.name} takes labels {counter.labels}, got {sorted(labels)}"
    workflow.metric_meter().create_counter(counter.name, counter.description, counter.unit).add(value, labels)


# ---------------------------------------------------------------- the business events, one call each
def task_published(kind: Kind, frozen_fen: int) -> None:
    add(TASKS_PUBLISHED, 1, kind=kind)
    add(FROZEN_FEN, frozen_fen, kind=kind)
    wlog().info("task published", kind=kind, frozen_fen=frozen_fen)


def piece_mounted(kind: Kind, piece_id: str) -> None:
    add(PIECES_MOUNTED, 1, kind=kind)
    wlog().info("piece mounted", kind=kind, piece_id=piece_id)


def conversions(kind: Kind, counted: int = 0, released: int = 0) -> None:
    add(CONVERSIONS_COUNTED, counted, kind=kind)
    add(CONVERSIONS_RELEASED, released, kind=kind)


def piece_settled(kind: Kind, piece_id: str, paid: bool, **fen_to: int) -> None:
    """`fen_to`: fen by recipient (payee=..., platform=..., provider=..., promotion=...)."""
    add(PIECES_SETTLED, 1, kind=kind, outcome="settled" if paid else "closed")
    for to, fen in fen_to.items():
        add(SETTLED_FEN, fen, kind=kind, to=to)
    wlog().info("piece settled" if paid else "piece closed", kind=kind, piece_id=piece_id,
                **{f"{to}_fen": fen for to, fen in fen_to.items()})


def task_refunded(kind: Kind, refunded_fen: int) -> None:
    add(REFUNDED_FEN, refunded_fen, kind=kind)
    wlog().info("task refunded", kind=kind, refunded_fen=refunded_fen)


def dispute_raised(kind: Kind, dispute: str) -> None:
    add(DISPUTES_RAISED, 1, kind=kind, dispute=dispute)
    wlog().info("dispute raised", kind=kind, dispute=dispute)


def dispute_resolved(kind: Kind, dispute: str) -> None:
    add(DISPUTES_RESOLVED, 1, kind=kind, dispute=dispute)
    wlog().info("dispute resolved", kind=kind, dispute=dispute)


def escalation(kind: Kind, was: bool, now: bool) -> None:
    """Call where a workflow's `escalated` flag may change, with its value before and after."""
    if was == now:
        return
    add(ESCALATIONS_OPENED if now else ESCALATIONS_CLOSED, 1, kind=kind)
    wlog().warning("escalation opened" if now else "escalation closed", kind=kind)


def money_stalled(kind: Kind, what: str, cause: str) -> None:
    add(MONEY_STALLS, 1, kind=kind)
    wlog().warning("money stalled: escalated", kind=kind, what=what, cause=cause)


def money_unstalled(kind: Kind, what: str) -> None:
    wlog().info("money stall cleared", kind=kind, what=what)
