"""Claims against the platform on a Xingguang task (XG-7, XG-10, R-14), as pure functions of the task's record: its
compliance pauses, the order amount and the damages already paid. One set of rules for a claim made while the task
runs (XingguangTaskWorkflow) and after it closed (XingguangClaimsWorkflow)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from workflows.contract import xingguang as c
from workflows.contract import xingguang_state as cs
from workflows.rules.clock import business_time
from workflows.rules.xingguang_money import damages_cap, damages_payable

# A compliance pause as (pause id, paused at, ended at: None while it lasts).
PauseSpan = tuple[str, datetime, datetime | None]


def pause_spans(pauses: Iterable[cs.PauseRecord]) -> list[PauseSpan]:
    return [(p.pause_id, p.paused_at, p.resumed_at or p.cancelled_at) for p in pauses if p.kind == "compliance"]


def overlapping_pause(spans: Iterable[PauseSpan], start: datetime, end: datetime) -> PauseSpan | None:
    """XG-7: the first compliance pause (of the task or one of its pieces) that overlaps [start, end)."""
    return next((span for span in spans if span[1] < end and (span[2] is None or start < span[2])), None)


def claim_problems(request: c.CompensateRequest, spans: Iterable[PauseSpan] | None, order_amount_fen: int | None,
                   damages_paid_fen: int) -> list[str]:
    """Why a claim is refused (CompensationRefused), first reason first; [] when it may be paid. `spans` None: the
    pauses are not judged (runs recorded before the record judged claims); `order_amount_fen` None: the record is
    not at hand yet (a validator of a claim after close), the cap is judged when it is."""
    start, end = request.period_start_at, request.period_end_at
    if spans is not None:
        if start is None or end is None or not start < end:
            return [("period_start_at, period_end_at: required, start before end: the period of the anomaly or "
                     "breach the claim is about (a pause delay earns nothing: XG-7)")]
        if (pause := overlapping_pause(spans, start, end)) is not None:
            pause_id, paused_at, until = pause
            return [(f"the claim's period {business_time(start)} to {business_time(end)} overlaps compliance pause "
                     f"{pause_id} (from {business_time(paused_at)}"
                     f"{f' to {business_time(until)}' if until else ', still open'}): a pause delay is not the "
                     "platform's fault and earns no compensation, whatever the cause named (XG-7, XG-10)")]
    if request.cause is not c.AnomalyCause.PLATFORM_FAULT:
        return [(f"cause: {request.cause.value} is not a delivery anomaly the platform caused: no compensation "
                 "(XG-7, XG-10)")]
    if request.kind is c.CompensationKind.DELIVERY_ANOMALY:
        if not request.policy.strip():
            return ["policy: required for a delivery anomaly (XG-10)"]
        if request.amount_fen is None:
            return [f"amount_fen: required: the equal value under policy {request.policy} (XG-10)"]
        return []
    if order_amount_fen is None:
        return []
    cap = damages_cap(order_amount_fen)
    basis = (f"damages are capped at {cap} fen (20% of the order amount {order_amount_fen} fen, rounded down), "
             f"{damages_paid_fen} fen already paid")
    if request.loss_fen is None:
        most = max(cap - damages_paid_fen, 0)
        return [f"loss_fen: required for damages (XG-10); at most {most} fen may be paid: {basis}"]
    limit = damages_payable(request.loss_fen, order_amount_fen, damages_paid_fen)
    if request.amount_fen is None:
        return [f"amount_fen: required; at most {limit} fen may be paid: {basis}, loss {request.loss_fen} fen"]
    if request.amount_fen > limit:
        return [(f"amount_fen: {request.amount_fen} is above what may be paid ({limit} fen): {basis}, loss "
                 f"{request.loss_fen} fen")]
    return []
