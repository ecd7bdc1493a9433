"""The `state` views of a mount task and of a mounted piece (contract/views.py), built from the carried state.

The task's money is the ledger's picture as of the task's last look there (each look at the closures reads it in
the same transaction), completed with what the task itself did since: its refunds."""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.contract import mount_task as c
    from workflows.contract import mounted_content as mc
    from workflows.contract.money import PieceMoney, TaskMoney
    from workflows.contract.views import (
        RECENT_BATCHES,
        Escalation,
        MountedContentView,
        MountTaskView,
        PieceCounts,
        Progress,
        RefundPartView,
    )
    from workflows.rules.billing import publicity_window_closes_at

DISPUTE_TO_DO = ("decide the fee: `python -m starter dispute resolve TASK CONTENT --dispute-id ID --amount-fen N` "
                 "(README \"Operating it\"); settlement waits for it")
REFUND_WAITS = "every piece to settle or close: each one's publicity window (3 days after its billing period), " \
               "and any dispute or penalty holding it (AM-13)"


def task_money(s: c.MountTaskState) -> TaskMoney:
    if s.stage is c.TaskStage.REFUNDED:
        return TaskMoney(frozen_fen=s.frozen_fen, paid_fen=s.paid_to_creators_fen,
                         platform_fees_fen=s.platform_fees_fen, refunded_fen=s.refunded_fen,
                         as_of=s.closures_read_at)
    if s.money is not None:
        money = s.money.model_copy()
        since = s.refunded_fen - money.refunded_fen  # refund parts posted after the last look
        if since > 0:
            money.refunded_fen += since
            money.refund_to_come_fen = max(0, money.refund_to_come_fen - since)
    else:  # nothing read from the ledger yet: what the task knows itself; all of it may still come back
        unsettled = max(0, s.frozen_fen - s.paid_to_creators_fen - s.platform_fees_fen - s.refunded_fen)
        money = TaskMoney(frozen_fen=s.frozen_fen, paid_fen=s.paid_to_creators_fen,
                          platform_fees_fen=s.platform_fees_fen, refunded_fen=s.refunded_fen,
                          refund_to_come_fen=unsettled)
    if s.stage in (c.TaskStage.PUBLISHED, c.TaskStage.ENDED):
        end = s.ended_at or (s.published.period_end_at if s.published else None)
        money.refund_expected_at = publicity_window_closes_at(end) if end is not None else None
        money.refund_waits_for = REFUND_WAITS
    return money


def task_view(s: c.MountTaskState, progress: Progress) -> MountTaskView:
    if s.register_in_db:
        counts = PieceCounts(mounted=s.pieces_count, open=s.pieces_open, settled=s.pieces_settled,
                             closed=s.pieces_closed - s.pieces_settled, held=len(s.held_content_ids))
    else:
        statuses = [p.status for p in s.pieces.values()]
        counts = PieceCounts(mounted=len(statuses), open=s.pieces_open, settled=statuses.count("settled"),
                             closed=statuses.count("closed"), held=len(s.held_content_ids))
    p = s.published
    return MountTaskView(
        task_id=s.task_id, stage=s.stage, client_id=p.client_id if p else None,
        terms=p.terms if p and s.publication is not None else None, budget_fen=s.budget_fen,
        period_start_at=p.period_start_at if p else None, period_end_at=p.period_end_at if p else None,
        ended_at=s.ended_at, end_reason=s.end_reason, cancel_reason=s.cancel_reason,
        refused_because=list(s.last_refusal) if s.stage in (c.TaskStage.DRAFT, c.TaskStage.NOT_PUBLISHED) else [],
        money=task_money(s), pieces=counts,
        creators_joined=s.creators_joined if s.register_in_db else len(s.creators),
        refund_parts=[RefundPartView(part=p.part, key=p.key, refunded_fen=p.refunded_fen, refunded_at=p.refunded_at,
                                     reserve_fen=p.reserve_fen, held_content_ids=p.held_content_ids,
                                     final=p.final) for p in s.refund_parts],
        progress=progress)


def piece_money(s: mc.MountedContentState, payable_fen: int) -> PieceMoney:
    if s.settlement is not None:
        return PieceMoney(paid_fen=s.settlement.fee_fen, platform_fee_fen=s.settlement.platform_fee_fen,
                          payee_account=s.payee_account)
    held = s.settlement_hold is not None and s.settlement_hold.released_at is None
    return PieceMoney(accrued_fen=payable_fen, held_fen=payable_fen if held else 0, payee_account=s.payee_account)


def content_escalations(s: mc.MountedContentState) -> list[Escalation]:
    """The piece's own escalation (AM-17: a dispute past its working days), as its view shows it."""
    if not s.escalated or not s.escalation_reason:
        return []
    since = next((d.escalated_at for d in s.disputes if d.escalated_at is not None and d.resolved_at is None), None)
    return [Escalation(what="fee dispute", since=since, why=s.escalation_reason, to_do=DISPUTE_TO_DO)]


def content_view(s: mc.MountedContentState, payable_fen: int, progress: Progress) -> MountedContentView:
    settled_at: datetime | None = s.settlement.settled_at if s.settlement is not None else None
    return MountedContentView(
        task_id=s.task_id, content_id=s.content_id, creator_id=s.creator_id, client_id=s.client_id,
        payee_account=s.payee_account, price_fen=s.price_fen, stage=s.stage, mounted_at=s.mounted_at,
        billing_period_ends_at=s.billing_period_ends_at, counting_stops_at=s.counting_stops_at,
        publicity_window_closes_at=s.publicity_window_closes_at, task_period_ended_at=s.task_period_ended_at,
        budget_exhausted_at=s.budget_exhausted_at, revoked_at=s.revoked_at, visibility_lost_at=s.visibility_lost_at,
        visibility_lost_kind=s.visibility_lost_kind, disposed_at=s.disposed_at, disposal_reason=s.disposal_reason,
        unmounted_at=s.unmounted_at, settled_at=settled_at, counted_conversions=s.counted_conversions,
        fee_fen=s.fee_fen if s.agreed_fee_fen is None else s.agreed_fee_fen,
        batches_received=s.batches_received if s.batches_in_db else len(s.batches),
        recent_batches=dict(list(s.batches.items())[-RECENT_BATCHES:]),
        batches_pending=len(s.pending_accrual) + len(s.incoming) + len(s.incoming_voids),
        late_batches=s.late_batches, agreed_fee_fen=s.agreed_fee_fen,
        money=piece_money(s, payable_fen), settlement=s.settlement, disputes=list(s.disputes),
        settlement_hold=s.settlement_hold, counting_freezes=list(s.counting_freezes),
        escalated=s.escalated or progress.escalated,
        escalation_reason=s.escalation_reason, progress=progress)
