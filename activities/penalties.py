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
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.directory import HeldSettlement, PenaltyRegister
from activities.ledger import Ledger, LedgerError
from workflows.contract.mounted_content import SettlementReleased
from workflows.rules.penalties import MONEY, RESTRICTIONS, PartyKind, PenaltyKind, deducts_when_final

PLATFORM_PENALTIES = "platform:penalties"
RELEASE_BATCH = 100  # held settlements signalled per activity call (bounded fan-out)


def party_account(party_kind: PartyKind, party_id: str) -> str:
    """Where a party's unwithdrawn money is: a creator's payable fees, a client's available balance."""
    return f"creator:{party_id}:payable" if party_kind is PartyKind.CREATOR else f"client:{party_id}:available"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PenaltyAction(_Model):
    case_id: str = Field(min_length=1)
    penalty_id: str = Field(min_length=1)
    party_kind: PartyKind
    party_id: str = Field(min_length=1)
    kind: PenaltyKind
    until_at: AwareDatetime | None = None
    amount_fen: int | None = None
    deduct_when_final: bool = False
    points: int | None = None
    at: AwareDatetime  # the business instant of the action (notice, outcome, expiry)


class PenaltyEffect(_Model):
    penalty_id: str
    frozen_fen: int = 0
    deducted_fen: int = 0
    released_fen: int = 0


class HoldSettlementRequest(_Model):
    creator_id: str
    workflow_id: str
    task_id: str
    content_id: str
    fee_fen: int = Field(ge=0)
    at: AwareDatetime


class HoldSettlementResult(_Model):
    held: bool
    case_id: str | None


class ReleaseHeldRequest(_Model):
    case_id: str
    outcome: Literal["paid", "deducted"]
    at: AwareDatetime
    limit: int = Field(RELEASE_BATCH, ge=1, le=1000)


class ReleaseHeldResult(_Model):
    released: int
    passed_on: int  # still held, now by another case freezing the same creator
    more: bool  # call again: the batch was full


class DeductHeldRequest(_Model):
    case_id: str
    task_id: str
    content_id: str
    payee_account: str
    fee_fen: int = Field(ge=0)


class DeductHeldResult(_Model):
    deducted_fen: int


class PenaltyActivities:
    def __init__(self, ledger: Ledger, register: PenaltyRegister, client: Client | None = None,
                 task_queue: str = "") -> None:
        self.ledger, self.register, self.client, self.task_queue = ledger, register, client, task_queue

    # ---- at notice (AM-19) and at the outcome (AM-20, AM-22) ------------------------------------------------

    @activity.defn(name="penalties.apply")
    def apply(self, action: PenaltyAction) -> PenaltyEffect:
        at = action.at.isoformat()
        if action.kind in RESTRICTIONS or action.kind in MONEY:
            # A fee freeze is also a restriction row: it is what makes the creator's settlements held.
            until = action.until_at.isoformat() if action.until_at else None
            self.register.apply_restriction(action.case_id, action.penalty_id, action.party_kind.value,
                                            action.party_id, action.kind.value, until, at)
        if action.kind is PenaltyKind.DEDUCT_CREDIT_SCORE:
            assert action.points is not None
            self.register.deduct_credit(action.case_id, action.penalty_id, action.party_kind.value, action.party_id,
                                        action.points, at)
        if action.kind in MONEY:
            return PenaltyEffect(penalty_id=action.penalty_id, frozen_fen=self._freeze(action))
        return PenaltyEffect(penalty_id=action.penalty_id)

    @activity.defn(name="penalties.withdraw")
    def withdraw(self, action: PenaltyAction) -> PenaltyEffect:
        """AM-22 upheld: funds unfrozen, credit restored, restriction lifted."""
        at = action.at.isoformat()
        released = self._resolve_hold(action, deduct=False) if action.kind in MONEY else 0
        self.register.lift_restriction(action.case_id, action.penalty_id, "appeal upheld", at)
        self.register.restore_credit(action.case_id, action.penalty_id, at)
        return PenaltyEffect(penalty_id=action.penalty_id, released_fen=released)

    @activity.defn(name="penalties.finalize")
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

    @activity.defn(name="penalties.expire")
    def expire(self, action: PenaltyAction) -> PenaltyEffect:
        """A timed restriction reached its until_at."""
        self.register.lift_restriction(action.case_id, action.penalty_id, "until_at reached", action.at.isoformat())
        return PenaltyEffect(penalty_id=action.penalty_id)

    # ---- held settlements (AM-19, AM-22) ----------------------------------------------------------------------

    @activity.defn(name="penalties.hold_settlement")
    def hold_settlement(self, request: HoldSettlementRequest) -> HoldSettlementResult:
        case_id = self.register.hold_settlement(
            HeldSettlement(workflow_id=request.workflow_id, creator_id=request.creator_id, case_id="",
                           task_id=request.task_id, content_id=request.content_id, fee_fen=request.fee_fen),
            request.at.isoformat())
        return HoldSettlementResult(held=case_id is not None, case_id=case_id)

    @activity.defn(name="penalties.release_held")
    async def release_held(self, request: ReleaseHeldRequest) -> ReleaseHeldResult:
        """Signals `settlement_released` to up to `limit` held content workflows, then records them released
        (a repeated signal is ignored by the content workflow, so a retry after a crash pays nothing twice)."""
        if self.client is None:
            raise ApplicationError("penalties.release_held needs a Temporal client", non_retryable=True)
        free, passed_on = self.register.held_to_release(request.case_id, request.limit)
        payload = SettlementReleased(case_id=request.case_id, outcome=request.outcome, released_at=request.at)
        for held in free:
            try:
                await self.client.get_workflow_handle(held.workflow_id).signal("settlement_released", payload)
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:
                    raise
                activity.logger.warning("held settlement %s: workflow no longer running", held.workflow_id)
            activity.heartbeat(held.workflow_id)
        self.register.mark_released([h.workflow_id for h in free], request.outcome, request.at.isoformat())
        return ReleaseHeldResult(released=len(free), passed_on=passed_on,
                                 more=len(free) + passed_on >= request.limit)

    @activity.defn(name="penalties.deduct_held")
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
        with _refusals():
            moved = self.ledger.transfer(key, request.payee_account, PLATFORM_PENALTIES, amount, "penalty_deduct",
                                         f"case {request.case_id}: held settlement of {request.content_id}")
        return DeductHeldResult(deducted_fen=moved.amount_fen)

    # ---- internals --------------------------------------------------------------------------------------------

    def _freeze(self, action: PenaltyAction) -> int:
        key = _key(action, "freeze")
        existing = self._existing_amount(key)
        if existing:
            return existing
        account = party_account(action.party_kind, action.party_id)
        available = self.ledger.balance(account).available_fen
        amount = available if action.amount_fen is None else min(action.amount_fen, available)
        if amount <= 0:
            return 0  # nothing unwithdrawn to freeze now; settlements from now on are held instead
        with _refusals():
            return self.ledger.hold(key, account, PLATFORM_PENALTIES, amount,
                                    f"case {action.case_id} penalty {action.penalty_id}: {action.kind.value}").amount_fen

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
        with _refusals():
            if deduct:
                self.ledger.post_pending(_key(action, "deduct"), freeze_key, memo=memo)
            else:
                self.ledger.void_pending(_key(action, "release"), freeze_key, memo=memo)
        return frozen

    def _existing_amount(self, business_key: str) -> int:
        found = [t for t in self.ledger.transfers(business_key_prefix=business_key) if t.business_key == business_key]
        return found[0].amount_fen if found else 0

    def all(self) -> list[Callable[..., Any]]:
        return [self.apply, self.withdraw, self.finalize, self.expire, self.hold_settlement, self.release_held,
                self.deduct_held]


def _key(action: PenaltyAction, step: str) -> str:
    return f"penalty:{action.case_id}:{action.penalty_id}:{step}"


class _refusals:
    """Ledger refusals are final: retrying the same request gets the same answer."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        if isinstance(error, (LedgerError, ValueError)):
            raise ApplicationError(str(error), type=type(error).__name__, non_retryable=True) from error
