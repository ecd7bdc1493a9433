"""The money of a Xingguang task that falls due (R-8, R-9, R-14), as a base class of XingguangTaskWorkflow: each
piece's settlement after its publicity window (or an operator's decision), the task's delay-period fee before them,
and the refund at close. Every call goes through workflows/escalation.py: a call that cannot complete is escalated
within minutes and retried behind the escalation."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from ports import xg_ledger
    from ports.xg_ledger import XgChargeRequest, XgRefundRequest, XgSettleRequest
    from workflows.contract import xingguang as c
    from workflows.contract import xingguang_state as cs
    from workflows.rules import xingguang_lifecycle as life

from workflows import metrics
from workflows.common import stage_attributes
from workflows.escalation import Stalls
from workflows.xingguang_holds import PieceHolds

# workflow.patched id: R-9's delay-period fee is charged before the task's pieces settle (they came after it before).
DELAY_FEE_FIRST_PATCH = "xg-delay-fee-before-settlements"


class MoneySteps(PieceHolds):
    _stalls: Stalls

    # ---------------------------------------------------------------- money that fell due
    async def _run_due_money(self) -> bool:
        """Settle the pieces that fell due; close the task when nothing is left. True once closed."""
        s = self.s
        due = [p for p in s.pieces.values() if p.settlement_due and p.stage not in life.DONE]
        if due and s.delay_fee_fen and not s.delay_fee_charged and workflow.patched(DELAY_FEE_FIRST_PATCH):
            await self._charge_delay_fee()  # the task's own fee before its pieces settle
        for piece in list(s.pieces.values()):
            if piece.settlement_due and piece.stage not in life.DONE:
                await self._settle(piece)
        was_escalated = s.escalated
        life.advance(s, workflow.now())
        metrics.escalation("xingguang", was_escalated, s.escalated)
        if life.ready_to_close(s):
            await self._close()
            return True
        return False

    async def _settle(self, piece: cs.Piece) -> None:
        """R-8: once, after the publicity window (or at an operator's decision); R-13: not while a freeze of the
        payee's fees holds it (then once released)."""
        s = self.s
        money = life.settlement_amounts(s, piece, self._ordered().terms)
        if await self._held(piece, money):
            return
        await self._stalls.call(
            f"settlement of piece {piece.piece_id}", xg_ledger.SETTLE_PIECE,
            XgSettleRequest(task_id=s.task_id, piece_id=piece.piece_id, payee_account=money.payee_account,
                            creator_earnings_fen=money.creator_earnings_fen,
                            promotion_spend_fen=money.promotion_spend_fen, platform_fee_fen=money.platform_fee_fen,
                            provider_id=s.provider_id, provider_fee_fen=money.provider_fee_fen))
        piece.settlement, piece.settled_at, piece.settlement_due = money, workflow.now(), False
        piece.stage = cs.PieceStage.CLOSED if piece.stop_decision == "decline" else cs.PieceStage.SETTLED
        if piece.stop_decision == "decline":
            piece.close_reason = "declined by an operator: creator earnings withheld (XG-8)"
        s.paid_to_creators_fen += money.creator_earnings_fen
        s.promotion_spend_fen += money.promotion_spend_fen
        s.platform_fees_fen += money.platform_fee_fen
        s.provider_fees_fen += money.provider_fee_fen
        metrics.piece_settled("xingguang", piece.piece_id, piece.stage is cs.PieceStage.SETTLED,
                              payee=money.creator_earnings_fen, promotion=money.promotion_spend_fen,
                              platform=money.platform_fee_fen, provider=money.provider_fee_fen)
        await self._deduct_if_the_case_says_so(piece, money.creator_earnings_fen)

    async def _close(self) -> None:
        """R-8 / R-9: the delay fee (if any), then the remainder less deductions back to the client."""
        s = self.s
        client_id = self._ordered().client_id  # only an ordered task settles and closes
        if s.delay_fee_fen and not s.delay_fee_charged:
            await self._charge_delay_fee()
        reasons = "; ".join(r.reason for r in s.penalties if r.kind == c.PenaltyAction.DEDUCT.value)
        refund = await self._stalls.call(
            "refund", xg_ledger.REFUND, XgRefundRequest(task_id=s.task_id, client_id=client_id,
                                                        deduction_fen=s.deduction_requested_fen,
                                                        deduction_reason=reasons))
        s.deducted_fen, s.refunded_fen = refund.deducted_fen, refund.refunded_fen
        s.stage, s.closed_at = cs.TaskStage.CLOSED, workflow.now()
        metrics.task_refunded("xingguang", refund.refunded_fen)
        metrics.escalation("xingguang", s.escalated, False)
        s.escalated, s.escalation_reasons, s.next_deadline_at = False, [], None
        workflow.set_current_details(self._stalls.details(f"xg task {s.task_id}: closed; refunded {s.refunded_fen} "
                                                          "fen", False))
        stage_attributes(s.stage.value, None, self._stalls.escalated)

    async def _charge_delay_fee(self) -> None:
        s = self.s
        charged = await self._stalls.call(
            "delay fee", xg_ledger.CHARGE, XgChargeRequest(task_id=s.task_id, charge_id="delay_fee",
                                                           amount_fen=s.delay_fee_fen,
                                                           reason=s.delay_fee_reason or "delay-period task "
                                                                                        "service fee"))
        s.delay_fee_fen, s.delay_fee_charged = charged.amount_fen, True
