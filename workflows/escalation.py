"""No silent stalls (R-14): a money activity that cannot complete is escalated within minutes, and keeps retrying.

The workflow cannot see an activity's retries while they happen (the server retries, the history shows nothing
until the last attempt), so a call runs in two phases: first under a bounded retry policy (FIRST_PHASE: a few
attempts, a few minutes at most, attempts that hang included), and if that fails, whatever the cause (an unknown
account, a constraint, a bug, a timeout), the workflow escalates: the `escalated` search attribute is set, the cause
is put first in its current details, and `xingtu_money_stalls_total` counts it. The same activity, with the same
request (its idempotency keys come from the business event, so nothing is paid twice), is then called again under
the project's unbounded policy, behind the escalation; when it completes the escalation is cleared. A failure the
activity marks non-retryable cannot be retried by the server: it is tried again every REFUSED_RECHECK.

Workflows pass their details through `Stalls.details` and publish `escalated or stalls.escalated`, so that
neither hides the other.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError, TimeoutError

with workflow.unsafe.imports_passed_through():
    from ports.port import ActivityPort
    from workflows.contract.names import SA
    from workflows.contract.views import Escalation
    from workflows.rules.clock import business_time

from workflows import metrics

# workflow.patched id: money activities escalate when stalled (histories recorded before replay without it).
MONEY_STALL_PATCH = "money-escalates-when-stalled"
# 1 + 2 + 4 + 8 s between 5 attempts: a fault is escalated within ~15 s, a hanging call within ~3 minutes.
FIRST_PHASE = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                          maximum_interval=timedelta(seconds=30), maximum_attempts=5)
REFUSED_RECHECK = timedelta(minutes=10)
# What an operator does about a stalled money call (README "Operating it"): nothing is lost by waiting.
STALL_TO_DO = ("the call is retried by itself with the same idempotency key: fix the cause (the ledger's database, "
               "an account, a refusal) and it completes; nothing is paid twice")

Req = TypeVar("Req")
Res = TypeVar("Res")


def cause_of(error: ActivityError) -> str:
    """What an operator reads: the failure's type and message, as the activity's last attempt reported it."""
    cause = error.cause
    if isinstance(cause, ApplicationError):
        return f"{cause.type or 'error'}: {cause.message}"
    if isinstance(cause, TimeoutError):
        return f"timed out ({cause.type.name if cause.type else 'timeout'}): {cause.message}"
    if isinstance(cause, FailureError):
        return f"{type(cause).__name__}: {cause.message}"
    return f"error: {error.message}"


class Stalls:
    """One per workflow instance: its money calls, and what it shows (details and the `escalated` attribute)."""

    def __init__(self, kind: metrics.Kind) -> None:
        self.kind = kind
        self.stalled: dict[str, tuple[datetime, str]] = {}  # what -> (escalated at, last cause)
        self._details = ""
        self._escalated = False

    @property
    def escalated(self) -> bool:
        return bool(self.stalled)

    def escalations(self) -> list[Escalation]:
        """The stalled calls as a view shows them (contract.views.Escalation)."""
        return [Escalation(what=what, since=at, why=cause, to_do=STALL_TO_DO) for what, (at, cause) in
                self.stalled.items()]

    def details(self, details: str, escalated: bool) -> str:
        """The workflow's details with its stalls first, for workflow.set_current_details; `escalated` is the
        workflow's own flag (what the search attribute shows once no call is stalled)."""
        self._details, self._escalated = details, escalated
        return self._rendered()

    def _rendered(self) -> str:
        stalls = "".join(f"ESCALATED: {what} cannot complete (since {business_time(at)}; retrying): {cause} | "
                         for what, (at, cause) in self.stalled.items())
        to_do = f"\n\n**What to do**: {STALL_TO_DO}" if self.stalled else ""
        return stalls + self._details + to_do

    def _publish(self) -> None:
        workflow.set_current_details(self._rendered())
        workflow.upsert_search_attributes([SA.ESCALATED.value_set(self._escalated or self.escalated)])

    def _stall(self, what: str, cause: str) -> None:
        first = what not in self.stalled
        self.stalled[what] = (self.stalled[what][0] if not first else workflow.now(), cause)
        if first:
            metrics.money_stalled(self.kind, what, cause)
        self._publish()

    def _clear(self, what: str) -> None:
        if self.stalled.pop(what, None) is not None:
            metrics.money_unstalled(self.kind, what)
            self._publish()

    async def call(self, what: str, port: ActivityPort[Req, Res], arg: Req, *, refusals: bool = False) -> Res:
        """Runs the activity of `port` to completion, escalating while it cannot complete (its timeout; FIRST_PHASE,
        then the port's own retry policy). `refusals`: a non-retryable ApplicationError is a business refusal the
        caller answers (raised at once, nothing escalated)."""
        if not workflow.patched(MONEY_STALL_PATCH):
            result: Res = await workflow.execute_activity(port.name, arg, result_type=port.result_type,
                                                          start_to_close_timeout=port.timeout, retry_policy=port.retry)
            return result
        policy = FIRST_PHASE
        while True:
            try:
                result = await workflow.execute_activity(port.name, arg, result_type=port.result_type,
                                                         start_to_close_timeout=port.timeout, retry_policy=policy)
            except ActivityError as error:
                final = isinstance(error.cause, ApplicationError) and error.cause.non_retryable
                if refusals and final:
                    self._clear(what)  # answered: a refusal is the caller's to give, not a stall
                    raise
                self._stall(what, cause_of(error))
                if final or policy is port.retry:
                    again = business_time(workflow.now() + REFUSED_RECHECK)
                    await workflow.sleep(REFUSED_RECHECK, summary=f"try {what} again {again}")
                policy = port.retry
                continue
            self._clear(what)
            return result
