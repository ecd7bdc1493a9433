"""Penalties for cheating and their appeal (AM-18..AM-22): which penalty fits which party, the appeal window, and
what each outcome does to each penalty. Plain functions over plain values."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from workflows.rules.clock import business_time, window_closes_at

APPEAL_WINDOW_DAYS = 7  # AM-20


class PartyKind(StrEnum):
    CREATOR = "creator"
    CLIENT = "client"


class PenaltyKind(StrEnum):
    """AM-18. Restrictions act through the directory; fee freezes and deductions through the ledger."""

    RESTRICT_EVENT_SIGNUPS = "restrict_event_signups"
    FREEZE_IN_FLIGHT_TASKS = "freeze_in_flight_tasks"
    CLOSE_ORDER_TAKING = "close_order_taking"  # for a time (until_at) or for good
    FREEZE_FEES = "freeze_fees"  # part (amount_fen) or all of the unwithdrawn fees; deducted when final if marked
    DEDUCT_FEES = "deduct_fees"  # all unwithdrawn fees: frozen at notice, deducted when final
    DEDUCT_CREDIT_SCORE = "deduct_credit_score"
    BAR_FROM_MOUNT_TASKS = "bar_from_mount_tasks"  # for good
    RESTRICT_ACCOUNT = "restrict_account"  # for a time or for good
    BAN_ACCOUNT = "ban_account"
    # R-12 (AM 四(一)3-4 清退): removed from the task named by `task_id`: a creator's pieces there are unmounted and
    # rejoining is refused; a client's task is cancelled (AM-7).
    REMOVE_FROM_TASK = "remove_from_task"


RESTRICTIONS = frozenset({
    PenaltyKind.RESTRICT_EVENT_SIGNUPS, PenaltyKind.FREEZE_IN_FLIGHT_TASKS, PenaltyKind.CLOSE_ORDER_TAKING,
    PenaltyKind.BAR_FROM_MOUNT_TASKS, PenaltyKind.RESTRICT_ACCOUNT, PenaltyKind.BAN_ACCOUNT,
    PenaltyKind.REMOVE_FROM_TASK,
})
MONEY = frozenset({PenaltyKind.FREEZE_FEES, PenaltyKind.DEDUCT_FEES})
# A restriction that may end at a set instant; the others are for good once final. AM-22: a freeze of fees may
# be set to end too (one marked to be deducted may not: it is deducted when final).
TIMED = frozenset({PenaltyKind.CLOSE_ORDER_TAKING, PenaltyKind.RESTRICT_ACCOUNT,
                   PenaltyKind.RESTRICT_EVENT_SIGNUPS, PenaltyKind.FREEZE_IN_FLIGHT_TASKS, PenaltyKind.FREEZE_FEES})
# AM-18: "clients can be penalized likewise (restrict, bar, freeze, deduct)"; R-12: and removed from a task.
FOR_CLIENTS = frozenset({PenaltyKind.RESTRICT_ACCOUNT, PenaltyKind.BAN_ACCOUNT, PenaltyKind.BAR_FROM_MOUNT_TASKS,
                         PenaltyKind.FREEZE_FEES, PenaltyKind.DEDUCT_FEES, PenaltyKind.REMOVE_FROM_TASK})
# AM-19, R-12: penalties under which the party's settlements are held (not paid) while they stand.
HOLDS_SETTLEMENTS = frozenset({PenaltyKind.FREEZE_FEES, PenaltyKind.DEDUCT_FEES, PenaltyKind.FREEZE_IN_FLIGHT_TASKS})
# AM-22: freezes that stand after a rejected appeal until their until_at or an operator's lift (with a reason).
LIFTABLE = frozenset({PenaltyKind.FREEZE_FEES, PenaltyKind.FREEZE_IN_FLIGHT_TASKS})


def penalty_problems(party: PartyKind, kind: PenaltyKind, *, until_at: datetime | None, amount_fen: int | None,
                     points: int | None, deduct_when_final: bool, notice_at: datetime,
                     task_id: str | None = None) -> list[str]:
    """Why a penalty cannot be issued as asked (empty when it can). Each problem names its field."""
    problems: list[str] = []
    if party is PartyKind.CLIENT and kind not in FOR_CLIENTS:
        problems.append(f"kind: {kind.value} is not a penalty for a client (allowed: "
                        f"{', '.join(sorted(k.value for k in FOR_CLIENTS))})")
    if until_at is not None:
        if kind not in TIMED:
            problems.append(f"until_at: {kind.value} is not a penalty for a time")
        elif until_at <= notice_at:
            problems.append(f"until_at: {business_time(until_at)} is not after the notice {business_time(notice_at)}")
    if amount_fen is not None and kind is not PenaltyKind.FREEZE_FEES:
        problems.append(f"amount_fen: only freeze_fees freezes a part; {kind.value} takes none")
    if kind is PenaltyKind.DEDUCT_CREDIT_SCORE and not points:
        problems.append("points: deduct_credit_score needs the points to deduct (> 0)")
    if points is not None and kind is not PenaltyKind.DEDUCT_CREDIT_SCORE:
        problems.append(f"points: only deduct_credit_score takes points; {kind.value} takes none")
    if deduct_when_final and kind is not PenaltyKind.FREEZE_FEES:
        problems.append("deduct_when_final: only a freeze_fees penalty can be marked to be deducted")
    if deduct_when_final and until_at is not None:
        problems.append("until_at: a freeze marked to be deducted has no end: it is deducted when the case is final")
    if kind is PenaltyKind.REMOVE_FROM_TASK and not task_id:
        problems.append("task_id: remove_from_task needs the task the party is removed from")
    if task_id is not None and kind is not PenaltyKind.REMOVE_FROM_TASK:
        problems.append(f"task_id: only remove_from_task names a task; {kind.value} takes none")
    return problems


def liftable(kind: PenaltyKind, deduct_when_final: bool) -> bool:
    """AM-22: an operator may lift a standing freeze with a reason; one to be deducted is deducted, not lifted."""
    return kind in LIFTABLE and not deducts_when_final(kind, deduct_when_final)


def deducts_when_final(kind: PenaltyKind, deduct_when_final: bool) -> bool:
    """AM-20: a freeze that the penalty says is to be deducted is deducted when the case becomes final."""
    return kind is PenaltyKind.DEDUCT_FEES or (kind is PenaltyKind.FREEZE_FEES and deduct_when_final)


def deducts_all_fees(kind: PenaltyKind, amount_fen: int | None, deduct_when_final: bool) -> bool:
    """Deducting *all* unwithdrawn fees reaches the settlements held during the case too (they are unwithdrawn
    fees of the creator); deducting a stated part does not."""
    return deducts_when_final(kind, deduct_when_final) and amount_fen is None


def appeal_window_closes_at(notice_at: datetime) -> datetime:
    """AM-20: 7 days from the notice, half-open: notice 2022-07-01 13:00:00 -> last valid 2022-07-08 12:59:59."""
    return window_closes_at(notice_at, APPEAL_WINDOW_DAYS)


def appeal_refusal(notice_at: datetime, appealed_at: datetime) -> str | None:
    """Why an appeal at `appealed_at` is out of time (None when it is in time)."""
    closes_at = appeal_window_closes_at(notice_at)
    if appealed_at < notice_at:
        return f"appealed_at: {business_time(appealed_at)} is before the notice {business_time(notice_at)}"
    if appealed_at >= closes_at:
        return (f"the appeal window closed at {business_time(closes_at)} (7 days from the notice of "
                f"{business_time(notice_at)}): the penalty is final")
    return None
