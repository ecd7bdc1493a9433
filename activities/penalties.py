"""Penalties acting on the world (AM-18..AM-22): restrictions and credit in the directory, fee freezes and
deductions in the ledger, and the release of settlements held while a creator's fees were frozen.

Money, built on the ledger's public operations only:
- freeze part/all of the unwithdrawn fees = a two-phase hold from the party's account to `platform:penalties`
  (`penalty:{case}:{penalty}:freeze`); the money stays in the party's account but is not available;
- deduct = post that hold (`...:deduct`); unfreeze = void it (`...:release`).
Every activity is idempotent by the case and penalty ids (ledger business keys, directory primary keys).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel
from temporalio import activity
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.creator_pieces import CreatorPieces
from activities.ledger import Ledger
from activities.ledger_activities import as_refusals
from activities.penalty_register import HeldSettlement, PenaltyRegister
from ports import penalties as port
from ports.penalties import (
    ActOnTaskRequest,
    ActOnTaskResult,
    DeductHeldRequest,
    DeductHeldResult,
    HoldSettlementRequest,
    HoldSettlementResult,
    PenaltyAction,
    PenaltyEffect,
    ReleaseHeldRequest,
    ReleaseHeldResult,
    SignalPiecesRequest,
    SignalPiecesResult,
)
from workflows.contract.mount_task import CancelRequest, CreatorRemoved, RemovalWithdrawn
from workflows.contract.mounted_content import SettlementReleased
from workflows.contract.names import mount_task_id
from workflows.contract.views import MountTaskView
from workflows.contract.xingguang_pieces import PieceSettlementReleased, piece_of_hold_key
from workflows.rules.penalties import MONEY, RESTRICTIONS, PenaltyKind, deducts_when_final

PLATFORM_PENALTIES = "platform:penalties"
class PenaltyActivities:
    def __init__(self, ledger: Ledger, register: PenaltyRegister, client: Client | None = None,
                 task_queue: str = "") -> None:
        self.ledger, self.register, self.client, self.task_queue = ledger, register, client, task_queue
        self.pieces = CreatorPieces(register.db)

    # ---- at notice (AM-19) and at the outcome (AM-20, AM-22) ------------------------------------------------

    @activity.defn(name=port.APPLY.name)
    def apply(self, action: PenaltyAction) -> PenaltyEffect:
        at = action.at.isoformat()
        if action.kind in RESTRICTIONS or action.kind in MONEY:
            # A fee freeze is also a restriction row: it is what makes the creator's settlements held.
            until = action.until_at.isoformat() if action.until_at else None
            self.register.apply_restriction(action.case_id, action.penalty_id, action.party_kind.value,
                                            action.party_id, action.kind.value, until, at, action.task_id,
                                            holds_settlements=action.acts_on_tasks)
        if action.kind is PenaltyKind.DEDUCT_CREDIT_SCORE:
            assert action.points is not None
            self.register.deduct_credit(action.case_id, action.penalty_id, action.party_kind.value, action.party_id,
                                        action.points, at)
        if action.kind in MONEY:
            return PenaltyEffect(penalty_id=action.penalty_id, frozen_fen=self._freeze(action))
        return PenaltyEffect(penalty_id=action.penalty_id)

    @activity.defn(name=port.WITHDRAW.name)
    def withdraw(self, action: PenaltyAction) -> PenaltyEffect:
        """AM-22 upheld: funds unfrozen, credit restored, restriction lifted."""
        at = action.at.isoformat()
        released = self._resolve_hold(action, deduct=False) if action.kind in MONEY else 0
        self.register.lift_restriction(action.case_id, action.penalty_id, "appeal upheld", at)
        self.register.restore_credit(action.case_id, action.penalty_id, at)
        return PenaltyEffect(penalty_id=action.penalty_id, released_fen=released)

    @activity.defn(name=port.FINALIZE.name)
    def finalize(self, action: PenaltyAction) -> PenaltyEffect:
        """AM-20/AM-22 final: a freeze marked to deduct is deducted, any other freeze is unfrozen; restrictions
        stand (until their until_at, or for good)."""
        if action.kind not in MONEY:
            return PenaltyEffect(penalty_id=action.penalty_id)
        deduct = deducts_when_final(action.kind, action.deduct_when_final)
        moved = self._resolve_hold(action, deduct=deduct)
        self.register.lift_restriction(action.case_id, action.penalty_id,
                                       "final: deducted" if deduct else "final: unfrozen", action.at.isoformat())
        if deduct:
            return PenaltyEffect(penalty_id=action.penalty_id, deducted_fen=moved)
        return PenaltyEffect(penalty_id=action.penalty_id, released_fen=moved)

    @activity.defn(name=port.EXPIRE.name)
    def expire(self, action: PenaltyAction) -> PenaltyEffect:
        """A timed restriction reached its until_at; a timed freeze of fees is unfrozen (AM-22)."""
        released = self._resolve_hold(action, deduct=False) if action.kind in MONEY else 0
        self.register.lift_restriction(action.case_id, action.penalty_id, "until_at reached", action.at.isoformat())
        return PenaltyEffect(penalty_id=action.penalty_id, released_fen=released)

    @activity.defn(name=port.LIFT.name)
    def lift(self, action: PenaltyAction) -> PenaltyEffect:
        """AM-22: an operator lifts a standing freeze with a reason: the fees are unfrozen, the restriction lifted."""
        released = self._resolve_hold(action, deduct=False) if action.kind in MONEY else 0
        self.register.lift_restriction(action.case_id, action.penalty_id, f"lifted: {action.reason}",
                                       action.at.isoformat())
        return PenaltyEffect(penalty_id=action.penalty_id, released_fen=released)

    # ---- acting on tasks (R-12) -------------------------------------------------------------------------------

    @activity.defn(name=port.SIGNAL_PIECES.name)
    async def signal_pieces(self, request: SignalPiecesRequest) -> SignalPiecesResult:
        """One page of the creator's pieces is signalled; a piece already closed is skipped (nothing to freeze).
        Safe to repeat: a piece ignores a freeze or resumption it already has."""
        client = self._client()
        page = self.pieces.of(request.creator_id, request.after, request.limit)
        payload = request.frozen if request.signal == "counting_frozen" else request.resumed
        signalled = 0
        for workflow_id in page:
            try:
                await client.get_workflow_handle(workflow_id).signal(request.signal, payload)
                signalled += 1
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:
                    raise
            activity.heartbeat(workflow_id)
        return SignalPiecesResult(signalled=signalled, last=page[-1] if page else request.after,
                                  more=len(page) >= request.limit)

    @activity.defn(name=port.ACT_ON_TASK.name)
    async def act_on_task(self, request: ActOnTaskRequest) -> ActOnTaskResult:
        client = self._client()
        handle = client.get_workflow_handle(mount_task_id(request.task_id))
        try:
            if request.action == "remove":
                await handle.signal("remove_creator", CreatorRemoved(
                    case_id=request.case_id, creator_id=request.party_id, removed_at=request.at))
                return ActOnTaskResult(outcome="creator removed")
            if request.action == "reinstate":
                await handle.signal("removal_withdrawn", RemovalWithdrawn(case_id=request.case_id,
                                                                          creator_id=request.party_id))
                return ActOnTaskResult(outcome="creator may join again")
            state = await handle.query("state", result_type=MountTaskView)
            if state.client_id != request.party_id:  # a case names the task; only the penalized client's is cancelled
                return ActOnTaskResult(outcome=f"not cancelled: task {request.task_id} is not client "
                                               f"{request.party_id}'s (client {state.client_id})")
            await handle.execute_update("cancel", CancelRequest(
                reason=f"client {request.party_id} removed from the task by violation case {request.case_id}",
                requested_by=request.case_id))
            return ActOnTaskResult(outcome="task cancelled")
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            return ActOnTaskResult(outcome=f"task {request.task_id} is not running")
        except WorkflowUpdateFailedError as err:  # the validator refused: already ended or cancelled
            return ActOnTaskResult(outcome=f"not cancelled: {err.cause}")

    def _client(self) -> Client:
        if self.client is None:
            raise ApplicationError("penalty activities that signal workflows need a Temporal client",
                                   non_retryable=True)
        return self.client

    # ---- held settlements (AM-19, AM-22) ----------------------------------------------------------------------

    @activity.defn(name=port.HOLD_SETTLEMENT.name)
    def hold_settlement(self, request: HoldSettlementRequest) -> HoldSettlementResult:
        case_id = self.register.hold_settlement(
            HeldSettlement(workflow_id=request.workflow_id, creator_id=request.creator_id, case_id="",
                           task_id=request.task_id, content_id=request.content_id, fee_fen=request.fee_fen),
            request.at.isoformat(), request.payee_account)
        return HoldSettlementResult(held=case_id is not None, case_id=case_id)

    @activity.defn(name=port.RELEASE_HELD.name)
    async def release_held(self, request: ReleaseHeldRequest) -> ReleaseHeldResult:
        """Signals `settlement_released` to up to `limit` held content workflows, then records them released
        (a repeated signal is ignored by the content workflow, so a retry after a crash pays nothing twice)."""
        if self.client is None:
            raise ApplicationError("penalties.release_held needs a Temporal client", non_retryable=True)
        free, passed_on = self.register.held_to_release(request.case_id, request.limit)
        payload = SettlementReleased(case_id=request.case_id, outcome=request.outcome, released_at=request.at)
        for held in free:
            workflow_id, message = _release_route(held.workflow_id, payload)
            try:
                await self.client.get_workflow_handle(workflow_id).signal("settlement_released", message)
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:
                    raise
                activity.logger.warning("held settlement %s: workflow no longer running", held.workflow_id)
            activity.heartbeat(held.workflow_id)
        self.register.mark_released([h.workflow_id for h in free], request.outcome, request.at.isoformat())
        return ReleaseHeldResult(released=len(free), passed_on=passed_on,
                                 more=len(free) + passed_on >= request.limit)

    @activity.defn(name=port.DEDUCT_HELD.name)
    def deduct_held(self, request: DeductHeldRequest) -> DeductHeldResult:
        """A held settlement released by a final case that deducts *all* unwithdrawn fees: once paid into the
        payee's account, the same fee goes to the platform as a penalty."""
        if request.fee_fen == 0:
            return DeductHeldResult(deducted_fen=0)
        key = f"penalty:{request.case_id}:held:{request.task_id}:{request.content_id}"
        available = self.ledger.balance(request.payee_account).available_fen
        amount = self._existing_amount(key) or min(request.fee_fen, available)
        if amount == 0:
            return DeductHeldResult(deducted_fen=0)
        with as_refusals():
            moved = self.ledger.transfer(key, request.payee_account, PLATFORM_PENALTIES, amount, "penalty_deduct",
                                         f"case {request.case_id}: held settlement of {request.content_id}")
        return DeductHeldResult(deducted_fen=moved.amount_fen)

    # ---- internals --------------------------------------------------------------------------------------------

    def _freeze(self, action: PenaltyAction) -> int:
        key = _key(action, "freeze")
        existing = self._existing_amount(key)
        if existing:
            return existing
        account = self.register.payable_account(action.party_kind.value, action.party_id)
        available = self.ledger.balance(account).available_fen
        amount = available if action.amount_fen is None else min(action.amount_fen, available)
        if amount <= 0:
            return 0  # nothing unwithdrawn to freeze now; settlements from now on are held instead
        with as_refusals():
            memo = f"case {action.case_id} penalty {action.penalty_id}: {action.kind.value}"
            return self.ledger.hold(key, account, PLATFORM_PENALTIES, amount, memo).amount_fen

    def _resolve_hold(self, action: PenaltyAction, *, deduct: bool) -> int:
        """Posts (deduct) or voids (unfreeze) the penalty's hold, once; returns the fen moved or released."""
        freeze_key = _key(action, "freeze")
        frozen = self._existing_amount(freeze_key)
        if not frozen:
            return 0
        for done_key in (_key(action, "deduct"), _key(action, "release")):
            if self._existing_amount(done_key):
                return frozen  # already resolved, by this very call's earlier attempt or by the other outcome
        memo = f"case {action.case_id} penalty {action.penalty_id}"
        with as_refusals():
            if deduct:
                self.ledger.post_pending(_key(action, "deduct"), freeze_key, memo=memo)
            else:
                self.ledger.void_pending(_key(action, "release"), freeze_key, memo=memo)
        return frozen

    def _existing_amount(self, business_key: str) -> int:
        found = [t for t in self.ledger.transfers(business_key_prefix=business_key) if t.business_key == business_key]
        return found[0].amount_fen if found else 0

    def all(self) -> list[Callable[..., Any]]:
        return [self.apply, self.withdraw, self.finalize, self.expire, self.lift, self.hold_settlement,
                self.release_held, self.deduct_held, self.signal_pieces, self.act_on_task]


def _release_route(key: str, payload: SettlementReleased) -> tuple[str, BaseModel]:
    """R-13: where a held settlement's release goes: a Xingguang piece (key `xg-task:{task}#{piece}`) to its task's
    workflow, naming the piece; any other key is a mounted content workflow's id."""
    piece = piece_of_hold_key(key)
    if piece is None:
        return key, payload
    return piece[0], PieceSettlementReleased(piece_id=piece[1], case_id=payload.case_id, outcome=payload.outcome,
                                             released_at=payload.released_at)


def _key(action: PenaltyAction, step: str) -> str:
    return f"penalty:{action.case_id}:{action.penalty_id}:{step}"
