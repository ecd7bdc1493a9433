"""The `state` view of a Xingguang task (contract/xingguang_state.XingguangTaskView), built from the carried state:
its facts, its money picture (R-8, contract/money.XingguangMoney) and its progress."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.contract import xingguang_state as cs
    from workflows.contract.common import public_view
    from workflows.contract.money import XingguangMoney
    from workflows.contract.views import Progress
    from workflows.rules.xingguang_money import platform_fee

# Pieces whose earnings are earned and whose promotion is billed, not settled yet.
EARNING = (cs.PieceStage.PUBLISHED, cs.PieceStage.PUBLICITY)
REFUND_WAITS = ("every piece to settle or close: each one's publicity window (3 days after its promotion ends), "
                "and any objection, data dispute or hold on it (R-5, R-8)")


def xg_money(s: cs.XingguangTaskState) -> XingguangMoney:
    rate = s.result.terms.platform_fee_rate_bp if s.result is not None else 0
    waived = s.result.terms.platform_fee_waived if s.result is not None else False
    accrued = held = fee_on_accrued = 0
    for piece in s.pieces.values():
        if piece.stage not in EARNING or piece.settlement is not None:
            continue
        amount = piece.agreed_earnings_fen + piece.billed_spend_fen
        accrued += amount
        fee_on_accrued += platform_fee(amount, rate, waived)
        if piece.settlement_hold is not None and piece.settlement_hold.released_at is None:
            held += amount
    spent = (s.paid_to_creators_fen + s.promotion_spend_fen + s.platform_fees_fen + s.delay_fee_fen
             + s.deducted_fen + s.refunded_fen)
    fee_on_accrued = min(fee_on_accrued, max(0, s.frozen_fen - spent - accrued))
    to_come = 0 if s.stage is cs.TaskStage.CLOSED else max(0, s.frozen_fen - spent - accrued - fee_on_accrued)
    windows = [p.publicity_window_closes_at for p in s.pieces.values()
               if p.settlement is None and p.publicity_window_closes_at is not None]
    return XingguangMoney(
        frozen_fen=s.frozen_fen, accrued_fen=accrued, platform_fee_on_accrued_fen=fee_on_accrued,
        paid_fen=s.paid_to_creators_fen, platform_fees_fen=s.platform_fees_fen, held_fen=held,
        refunded_fen=s.refunded_fen, refund_to_come_fen=to_come,
        refund_expected_at=max(windows) if to_come and windows else None,
        refund_waits_for=REFUND_WAITS if to_come else None, promotion_spend_fen=s.promotion_spend_fen,
        delay_fee_fen=s.delay_fee_fen, deducted_fen=s.deducted_fen, provider_fees_fen=s.provider_fees_fen)


def task_view(s: cs.XingguangTaskState, progress: Progress) -> cs.XingguangTaskView:
    facts = public_view(cs.XingguangTaskFacts, s)
    return cs.XingguangTaskView.model_construct(
        **dict(facts), batches_pending=len(s.pending_batches) + len(s.pending_voids), money=xg_money(s),
        progress=progress)
