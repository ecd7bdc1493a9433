"""Held settlements of a Xingguang task's pieces (R-13, AM-19, AM-22), as a base class of XingguangTaskWorkflow.

A freeze of a party's unwithdrawn fees holds every settlement that would pay that party, whatever the task kind:
before a piece pays its creator earnings, the task asks the penalty register (`penalties.hold_settlement`, the
activity mounted content uses) whether the creator's fees, or those of the party the payee account belongs to (an
MCN creator's agency), are frozen. The register records the hold atomically with that answer, under the key
`xg-task:{task_id}#{piece_id}` (contract `piece_hold_key`): pieces share one workflow, and the register keys held
settlements by workflow id. A held piece pays nothing while the rest of the task goes on (other pieces settle;
the refund waits, as for any unsettled piece); the case's outcome sends `settlement_released` with the piece id
(penalties.release_held routes the key back to this workflow), and the piece settles once, then, on a `deducted`
outcome, its creator earnings go to the platform as the case's penalty (`penalties.deduct_held`).
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from ports import penalties
    from ports.penalties import DeductHeldRequest, HoldSettlementRequest
    from workflows.contract import xingguang_pieces as cp
    from workflows.contract import xingguang_state as cs
    from workflows.contract.names import xingguang_task_id
    from workflows.rules.clock import business_time

from workflows.escalation import Stalls
from workflows.xingguang_piece import WorkflowBase

# workflow.patched id: a piece asks whether a penalty holds its settlement (histories before it settle at once).
XG_HOLD_PATCH = "r-13-xg-held-settlements"


class PieceHolds(WorkflowBase):
    _stalls: Stalls

    def _tick(self) -> None:
        raise NotImplementedError  # XingguangTaskWorkflow's: apply time, show where the task stands

    @workflow.signal(name="settlement_released")
    def settlement_released(self, event: cp.PieceSettlementReleased) -> None:
        """R-13 / AM-22: the case holding piece `piece_id` released it: it settles once (a repeat is ignored)."""
        s = self.s
        s.messages_this_run += 1
        piece = s.pieces.get(event.piece_id)
        if piece is None or piece.settlement is not None:
            return  # not a piece of this task, or settled already: paid once
        hold = piece.settlement_hold
        if hold is not None and hold.released_at is not None:
            return  # a repeat
        if hold is None:  # the release overtook the answer of the hold check: remember it
            piece.settlement_hold = hold = cs.PieceSettlementHold(case_id=event.case_id, held_at=event.released_at)
        hold.released_at, hold.outcome, hold.case_id = event.released_at, event.outcome, event.case_id
        self._wake = True

    async def _held(self, piece: cs.Piece, money: cs.PieceMoney) -> bool:
        """AM-19 / R-13: asks (and records, atomically) whether a freeze holds what this piece would pay."""
        s = self.s
        if piece.settlement_hold is not None:
            return piece.settlement_hold.released_at is None
        if money.creator_earnings_fen == 0 or not workflow.patched(XG_HOLD_PATCH):
            return False  # nothing paid to the creator's side, or a run from before holds reached Xingguang
        result = await self._stalls.call(
            f"hold check of piece {piece.piece_id}", penalties.HOLD_SETTLEMENT,
            HoldSettlementRequest(creator_id=piece.creator_id, workflow_id=cp.piece_hold_key(s.task_id, piece.piece_id),
                                  task_id=s.task_id, content_id=piece.piece_id, fee_fen=money.creator_earnings_fen,
                                  at=workflow.now(), payee_account=money.payee_account))
        if not result.held or piece.settlement_hold is not None:  # not held, or released already meanwhile
            return result.held and piece.settlement_hold is not None and piece.settlement_hold.released_at is None
        assert result.case_id is not None
        piece.settlement_hold = cs.PieceSettlementHold(case_id=result.case_id, held_at=workflow.now())
        workflow.logger.info("piece %s of %s: settlement held by case %s (R-13)", piece.piece_id, s.task_id,
                             result.case_id)
        self._tick()  # the details name the case while the task waits
        return True

    async def _deduct_if_the_case_says_so(self, piece: cs.Piece, paid_fen: int) -> None:
        """A `deducted` release: what was just paid to the payee goes to the platform as the case's penalty."""
        hold = piece.settlement_hold
        if hold is None or hold.outcome != "deducted" or paid_fen == 0:
            return
        result = await self._stalls.call(
            f"penalty deduction of piece {piece.piece_id}", penalties.DEDUCT_HELD,
            DeductHeldRequest(case_id=hold.case_id, task_id=xingguang_task_id(self.s.task_id),
                              content_id=piece.piece_id, payee_account=piece.payee_account, fee_fen=paid_fen))
        hold.deducted_fen = result.deducted_fen

    def _holds_details(self) -> str:
        """What the task's current details say of held pieces (which case holds each)."""
        held = [f"piece {p.piece_id} held by case {p.settlement_hold.case_id} since "
                f"{business_time(p.settlement_hold.held_at)}"
                for p in self.s.pieces.values()
                if p.settlement_hold is not None and p.settlement_hold.released_at is None and p.settlement is None]
        return "".join(f"; {text} (R-13)" for text in held)
