"""The settlement of a mounted piece (AM-12, AM-13), a part of MountedContentWorkflow (mounted_content.py): at the
close of the publicity window the piece settles once (the payee gets the fee, the platform 10%), unless a dispute
(AM-17) or a penalty (AM-19) holds it; a held piece is listed in the ledger so that its task refunds the rest."""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from ports import ledger, main_site
    from ports.ledger import HoldContentRequest, HoldReason, SettleRequest
    from ports.main_site import UnmountRequest
    from workflows.contract import mounted_content as c
    from workflows.contract.mount_task import ContentClosedSignal
    from workflows.contract.names import mount_task_id
    from workflows.rules.fees import platform_fee

from workflows import metrics
from workflows.content_disputes import DisputesAndHolds
from workflows.escalation import Stalls

# Runs that record this marker leave their closure in the ledger only; older runs also send content_closed.
CLOSURE_IN_LEDGER = "closure-in-ledger-not-signalled"
# Runs that record this marker tell the ledger when their settlement is held, so the task refunds the rest (AM-13).
HOLD_IN_LEDGER = "am-13-hold-recorded-in-ledger"


class ContentSettlement(DisputesAndHolds):
    """Settles or holds; what holds it (disputes, penalties) is DisputesAndHolds'."""

    s: c.MountedContentState
    _stalls: Stalls

    def _show(self, details: str, next_deadline_at: datetime | None) -> None:
        raise NotImplementedError

    async def _unmount(self, reason: str) -> None:
        s = self.s
        if s.unmounted_at is not None:
            return
        result = await main_site.UNMOUNT(
            UnmountRequest(task_id=s.task_id, content_id=s.content_id, unmounted_at=workflow.now(), reason=reason))
        s.unmounted_at = result.unmounted_at

    async def _close_window(self) -> None:
        """The publicity window has closed: settle, unless a dispute (AM-17) or a penalty (AM-19) holds it."""
        s = self.s
        await self._reconcile_all()  # what arrived before the close counts (the run may have left it queued)
        if self._open_dispute() is not None or self._resolving:
            s.stage = c.ContentStage.DISPUTED
            await self._record_hold("dispute")
        elif await self._held_by_a_penalty(self._payable_fee()):
            s.stage = c.ContentStage.HELD
            await self._record_hold("penalty")
        else:
            await self._settle()

    async def _record_hold(self, reason: HoldReason) -> None:
        """AM-13: the ledger lists this piece as held until its closure, so that its task may refund the rest of
        its escrow without waiting for it (the task reads the list with its closures: no message to the task)."""
        s = self.s
        if s.hold_recorded_at is not None or not workflow.patched(HOLD_IN_LEDGER):
            return
        await ledger.HOLD_CONTENT(
            HoldContentRequest(task_id=s.task_id, content_id=s.content_id, reason=reason, held_at=workflow.now()))
        s.hold_recorded_at = workflow.now()

    def _payable_fee(self) -> int:
        return 0 if self.s.disposed_at is not None else self._agreed_fee()

    async def _settle(self) -> None:
        """AM-12: at the close of the publicity window, once: the payee gets the fee, the platform 10%."""
        s = self.s
        await self._unmount("settled")
        fee = self._payable_fee()
        result = await self._stalls.call(
            "settlement", ledger.SETTLE,
            SettleRequest(task_id=s.task_id, content_id=s.content_id, payee_account=s.payee_account,
                          fee_fen=fee, platform_fee_fen=platform_fee(fee),
                          outcome="closed" if s.disposed_at is not None else "settled"),
        )
        s.settlement = c.SettlementRecord(
            settled_at=workflow.now(), fee_fen=result.fee_fen, platform_fee_fen=result.platform_fee_fen,
            payee_account=s.payee_account, transfer_key=f"settle:{s.task_id}:{s.content_id}",
        )
        s.stage = c.ContentStage.CLOSED if s.disposed_at is not None else c.ContentStage.SETTLED
        metrics.piece_settled("mount", s.content_id, s.stage is c.ContentStage.SETTLED, payee=result.fee_fen,
                              platform=result.platform_fee_fen)
        await self._deduct_if_the_case_says_so(result.fee_fen)
        self._show(f"{s.stage.value}: fee {result.fee_fen} fen to {s.payee_account}, platform fee "
                   f"{result.platform_fee_fen} fen", None)
        if workflow.patched(CLOSURE_IN_LEDGER):
            return  # the task reads the closure from the ledger
        await workflow.get_external_workflow_handle(mount_task_id(s.task_id)).signal(
            "content_closed",
            ContentClosedSignal(content_id=s.content_id, fee_fen=result.fee_fen,
                                platform_fee_fen=result.platform_fee_fen, settled=s.disposed_at is None),
        )
