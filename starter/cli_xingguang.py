"""`python -m starter xg-...`: Xingguang tasks (XG-1..XG-11) from the operator's side: order, materials review,
provider, the pieces' reviews and decisions, pause / resume / cancel, stop, compensation and penalties, and the
platform's billable-event batches. Money commands take the caller's key (the task id, a compensation, penalty or
pause id) and answer "already done (same key)" with the first answer when it was used before."""

from __future__ import annotations

import argparse
from typing import Any

from pydantic import BaseModel
from temporalio.client import Client
from temporalio.service import RPCError

from starter import xingguang as xgapi
from starter.cli_common import Action, dump, task_queue
from starter.cli_errors import CliError, Reason
from starter.cli_errors import refusal as cli_refusal
from starter.client import Refused, workflow_status
from workflows.contract import xingguang as xg
from workflows.contract import xingguang_pieces as xgp
from workflows.contract import xingguang_state as xgs
from workflows.contract.names import xingguang_claims_id
from workflows.contract.xingguang_claims import XingguangClaimsView
from workflows.rules.repeats import cancel_after_pause_conflict

EXAMPLE = "python -m starter"
TASK = ("task_id",)


async def _state(client: Client, task_id: str) -> xgs.XingguangTaskView | None:
    try:
        return await xgapi.state(client, task_id)
    except RPCError:
        return None  # closed long ago or never started: the call's own answer says which


def _update(name: str, result: type[BaseModel]) -> Any:
    async def call(client: Client, args: argparse.Namespace, request: BaseModel) -> Any:
        try:
            return await xgapi.update(client, args.task_id, name, request, result)
        except Refused as refusal:  # closed, or never started: say which
            if refusal.kind == "NotRunning" and await workflow_status(
                    client, xg.xg_task_workflow_id(args.task_id)) is None:
                raise CliError("NotFound", f"xg task {args.task_id} not found: it was never ordered",
                               [Reason(f"{args.task_id} not found", "task_id")], exit_code=1) from None
            raise
    return call


def _signal(name: str) -> Any:
    async def call(client: Client, args: argparse.Namespace, request: BaseModel) -> Any:
        if await _state(client, args.task_id) is None:
            raise CliError("NotFound", f"xg task {args.task_id} is not running",
                           [Reason(f"{args.task_id} is not running", "task_id")], exit_code=1)
        await client.get_workflow_handle(xg.xg_task_workflow_id(args.task_id)).signal(name, request)
        return {"sent": name, "to": xg.xg_task_workflow_id(args.task_id), **dump(request)}
    return call


# ------------------------------------------------------------------ keys of the money commands
async def _ordered_before(client: Client, args: argparse.Namespace, request: xg.OrderRequest) -> bool:
    """Ordered before: the workflow answers the same order with the first answer and refuses other terms naming
    each differing field (its OrderRefused)."""
    state = await _state(client, request.task_id)
    return state is not None and state.result is not None


async def _order(client: Client, args: argparse.Namespace, request: xg.OrderRequest) -> xg.OrderResult:
    return await xgapi.order(client, request, task_queue(args))


def _money_record(field: str, id_field: str) -> Any:
    async def replayed(client: Client, args: argparse.Namespace, request: Any) -> bool:
        state = await _state(client, args.task_id)
        key = getattr(request, id_field)
        return state is not None and any(r.ref_id == key for r in getattr(state, field))
    return replayed


async def _cancelled_before(client: Client, args: argparse.Namespace, request: xg.CancelAfterPauseRequest) -> bool:
    """The pause id is the key: the task cancelled after it before is a replay (the workflow answers the same request
    with its first answer, and refuses another naming the first cancellation and each differing field)."""
    state = await _state(client, args.task_id)
    pause = next((p for p in state.pauses if p.pause_id == request.pause_id), None) if state else None
    return pause is not None and pause.cancelled_at is not None


async def _cancel(client: Client, args: argparse.Namespace, request: xg.CancelAfterPauseRequest) -> Any:
    try:
        return await _update("cancel_after_pause", xgs.TaskStatus)(client, args, request)
    except Refused as refusal:
        # The task closed since: its workflow can no longer answer, its last state still tells the cancellation
        # (as the workflow answers a repeat after it continued as new: the status now, applied at the cancellation).
        state = await _state(client, args.task_id) if refusal.kind == "NotRunning" else None
        pause = next((p for p in state.pauses if p.cancelled_at is not None), None) if state else None
        if state is None or pause is None:
            raise
        if conflict := cancel_after_pause_conflict(state, state.money.delay_fee_fen, pause, None, request):
            raise cli_refusal("XingguangStepRefused", conflict) from None
        return xgs.TaskStatus(
            task_id=state.task_id, stage=state.stage, applied_at=pause.cancelled_at, paused=state.paused,
            escalated=state.escalated, escalation_reasons=state.escalation_reasons,
            promotion_stopped_at=state.promotion_stopped_at, promotion_due_to_end_at=state.promotion_due_to_end_at,
            next_deadline_at=state.next_deadline_at, end_reason=state.end_reason)


async def _compensated_before(client: Client, args: argparse.Namespace, request: xg.CompensateRequest) -> bool:
    """The compensation id is the key, whether it was paid by the task or, after it closed, by its claims."""
    if await _money_record("compensations", "compensation_id")(client, args, request):
        return True
    try:
        claims = await client.get_workflow_handle(xingguang_claims_id(args.task_id)).query(
            "state", result_type=XingguangClaimsView)
    except RPCError:
        return False
    return any(r.ref_id == request.compensation_id for r in claims.claims)


async def _compensate(client: Client, args: argparse.Namespace, request: xg.CompensateRequest) -> Any:
    return await xgapi.compensate(client, args.task_id, request, task_queue(args))


# ------------------------------------------------------------------ shorthands
def _verdict_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--approve", action="append", metavar="KIND:ITEM_ID",
                        help="an approved material (repeatable), KIND one of "
                        + ", ".join(k.value for k in xg.MaterialKind))
    parser.add_argument("--reject", action="append", metavar="KIND:ITEM_ID:REASON",
                        help="a rejected material with the reason (repeatable)")


def _verdict_body(args: argparse.Namespace) -> dict[str, Any]:
    verdicts = []
    for text, approved in [(t, True) for t in args.approve or []] + [(t, False) for t in args.reject or []]:
        parts = text.split(":", 2)
        if len(parts) < 2:
            flag = "--approve" if approved else "--reject"
            raise CliError("InvalidArguments", f"{flag}: {text!r} is not KIND:ITEM_ID",
                           [Reason(f"{text!r} is not KIND:ITEM_ID", flag)])
        verdicts.append({"kind": parts[0], "item_id": parts[1], "approved": approved,
                         "reason": parts[2] if len(parts) > 2 else ""})
    return {"verdicts": verdicts} if verdicts else {}


def _fixed(**values: Any) -> Any:
    return lambda args: values


ACTIONS = [
    Action("xg-order", "order a Xingguang task (XG-1, R-8: freezes the order amount); the task id is the key: the "
           "same order again answers with the first, other terms are refused naming each differing field",
           f"{EXAMPLE} xg-order xg-1 --body @examples/xg-order.json", TASK, xg.OrderRequest, _order,
           replayed=_ordered_before),
    Action("xg-review-materials", "an operator reviews the task's materials (XG-1): qualifications, components, "
           "links", f"{EXAMPLE} xg-review-materials xg-1 --operator-id op-1 --approve qualification:lic-1 "
           "--reject link:l-2:'landing page 404'", TASK, xg.ReviewMaterialsRequest,
           _update("review_materials", xgs.TaskStatus), extra_flags=_verdict_flags, extra_body=_verdict_body),
    Action("xg-assign-provider", "an operator assigns the service provider (XG-3)",
           f"{EXAMPLE} xg-assign-provider xg-1 --operator-id op-1 --provider-id sp-1", TASK,
           xg.AssignProviderRequest, _update("assign_provider", xgs.TaskStatus)),
    Action("xg-select-creator", "the provider selects a creator for a piece at agreed earnings (XG-4)",
           f"{EXAMPLE} xg-select-creator xg-1 --provider-id sp-1 --piece-id p1 --creator-id cr-1 "
           "--creator-earnings-fen 20000", TASK, xgp.SelectCreatorRequest, _update("select_creator", xgs.Piece)),
    Action("xg-submit-content", "the creator submits a piece's content (XG-5)",
           f"{EXAMPLE} xg-submit-content xg-1 --creator-id cr-1 --piece-id p1 --content-id v-1", TASK,
           xgp.SubmitContentRequest, _update("submit_content", xgs.Piece)),
    Action("xg-provider-review", "the provider reviews a piece (XG-5)",
           f"{EXAMPLE} xg-provider-review xg-1 --provider-id sp-1 --piece-id p1 --approved", TASK,
           xgp.ProviderReviewRequest, _update("provider_review", xgs.Piece)),
    Action("xg-client-review", "the client reviews a piece (XG-5)",
           f"{EXAMPLE} xg-client-review xg-1 --client-id cl-1 --piece-id p1 --no-approved --reason 'wrong logo'",
           TASK, xgp.ClientReviewRequest, _update("client_review", xgs.Piece)),
    Action("xg-objection-raise", "the client objects to a published piece within 3 days (XG-5)",
           f"{EXAMPLE} xg-objection-raise xg-1 --client-id cl-1 --piece-id p1 --reason 'claims not agreed'", TASK,
           xgp.RaiseObjectionRequest, _update("raise_objection", xgs.Piece)),
    Action("xg-objection-decide", "an operator decides an objection: upheld settles the piece at these amounts",
           f"{EXAMPLE} xg-objection-decide xg-1 --operator-id op-1 --piece-id p1 --upheld --creator-earnings-fen "
           "5000 --note 'half delivered'", TASK, xgp.DecideObjectionRequest, _update("decide_objection", xgs.Piece)),
    Action("xg-data-dispute-raise", "the client disputes a piece's billed events (XG-6)",
           f"{EXAMPLE} xg-data-dispute-raise xg-1 --client-id cl-1 --piece-id p1 --reason 'bot clicks'", TASK,
           xgp.RaiseDataDisputeRequest, _update("raise_data_dispute", xgs.Piece)),
    Action("xg-data-dispute-resolve", "an operator resolves a data dispute with the corrected event count (XG-6)",
           f"{EXAMPLE} xg-data-dispute-resolve xg-1 --operator-id op-1 --piece-id p1 --billable-events 40 "
           "--note 'bots removed'", TASK, xgp.ResolveDataDisputeRequest, _update("resolve_data_dispute", xgs.Piece)),
    Action("xg-pause", "an operator pauses the task or one piece for compliance changes (XG-7); the deadline runs "
           "from the notice's receipt", f"{EXAMPLE} xg-pause xg-1 --operator-id op-1 --pause-id pz-1 --reason "
           "'health claim' --notice-sent-at now --changes-within-days 3", TASK, xg.PauseRequest,
           _update("pause", xgs.PauseRecord)),
    Action("xg-resume", "the client made the changes: the pause ends and promotion resumes (XG-7)",
           f"{EXAMPLE} xg-resume xg-1 --client-id cl-1 --pause-id pz-1", TASK, xg.RespondToPauseRequest,
           _update("respond_to_pause", xgs.PauseRecord), skip=("changes_made",),
           extra_body=_fixed(changes_made=True)),
    Action("xg-refuse-changes", "the client refuses the changes asked by a pause (XG-7): the task may be cancelled",
           f"{EXAMPLE} xg-refuse-changes xg-1 --client-id cl-1 --pause-id pz-1 --note 'we keep the claim'", TASK,
           xg.RespondToPauseRequest, _update("respond_to_pause", xgs.PauseRecord),
           skip=("changes_made", "late_changes_accepted_by"), extra_body=_fixed(changes_made=False)),
    Action("xg-cancel", "an operator cancels the task after a refused or missed pause (XG-7, R-9), with a delay fee "
           "of at most what remains; the pause id is the key",
           f"{EXAMPLE} xg-cancel xg-1 --operator-id op-1 --pause-id pz-1 --delay-fee-fen 1000 --delay-fee-reason "
           "'3 days of delay'", TASK, xg.CancelAfterPauseRequest, _cancel, replayed=_cancelled_before),
    Action("xg-violation", "an operator records a termination event (XG-8, R-11): stop, or continue after a fix",
           f"{EXAMPLE} xg-violation xg-1 --operator-id op-1 --violation-id v-1 --cause "
           "component_or_landing_page_fault --decision continue_after_fix --note 'landing page down'", TASK,
           xg.RecordViolationRequest, _update("record_violation", xgs.TaskStatus)),
    Action("xg-stop", "an operator stops the task for a violation (XG-8, R-11); then decide each unsettled piece",
           f"{EXAMPLE} xg-stop xg-1 --operator-id op-1 --violation-id v-2 --cause illegal_or_negative_event "
           "--note 'brand scandal'", TASK, xg.RecordViolationRequest, _update("record_violation", xgs.TaskStatus),
           skip=("decision",), extra_body=_fixed(decision="stop")),
    Action("xg-fix-proof", "the client proves a fault fixed: the held task continues (XG-8)",
           f"{EXAMPLE} xg-fix-proof xg-1 --violation-id v-1 --submitted-by cl-1 --proof 'page restored 10:05'",
           TASK, xg.SubmitFixProofRequest, _update("submit_fix_proof", xgs.TaskStatus)),
    Action("xg-decide-piece", "an operator settles or declines a piece after a stop (R-9, R-11)",
           f"{EXAMPLE} xg-decide-piece xg-1 --operator-id op-1 --piece-id p1 --settle --note 'delivered in full'",
           TASK, xg.DecidePieceRequest, _update("decide_piece", xgs.Piece)),
    Action("xg-compensate", "an operator compensates the client (XG-10: delivery anomaly, or damages capped at 20% "
           "of the order amount); also after the task closed (R-14); the compensation id is the key",
           f"{EXAMPLE} xg-compensate xg-1 --operator-id op-1 --compensation-id k-1 --kind delivery_anomaly "
           "--cause platform_fault --period-start-at 2026-12-02T10:00:00+08:00 --period-end-at "
           "2026-12-02T12:00:00+08:00 --amount-fen 3000 --policy 'anomaly policy 2026-11' --note 'wrong region'",
           TASK, xg.CompensateRequest, _compensate, replayed=_compensated_before),
    Action("xg-penalize", "an operator deducts from the task's money or freezes the client's balance (XG-8); the "
           "penalty id is the key", f"{EXAMPLE} xg-penalize xg-1 --operator-id op-1 --penalty-id f-1 --action "
           "freeze --amount-fen 5000 --reason 'illegal claim'", TASK, xg.PenalizeRequest,
           _update("penalize", xg.PenaltyResult), replayed=_money_record("penalties", "penalty_id")),
    Action("xg-events", "report a batch of billable events of a piece, as the platform's statistics do (R-1: the "
           "event id is the key)", f"{EXAMPLE} xg-events xg-1 --event-id e-1 --piece-id p1 --count 50 "
           "--occurred-at now", TASK, xgp.BillableEventBatch, _signal("report_billable_events")),
    Action("xg-void-events", "void an earlier batch of billable events (R-1, before settlement)",
           f"{EXAMPLE} xg-void-events xg-1 --event-id e-1 --reason 'cheating found'", TASK,
           xgp.VoidBillableEvents, _signal("void_billable_events")),
]


def add_commands(sub: Any) -> None:
    for action in ACTIONS:
        action.add(sub)
