"""Typed helpers for services that raise and resolve fee disputes (MountedContentWorkflow, AM-11, AM-17) and issue
and handle penalty notices (ViolationCaseWorkflow `violation:{case_id}`, AM-18..AM-22).

A business refusal raises starter.client.Refused with the workflow's reason (it names the field and, for a late
dispute or appeal, the closing instant in business time)."""

from __future__ import annotations

import contextlib

from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from starter import client as client_helpers
from starter.client import Refused, _update
from workflows.contract import violation_case as vc
from workflows.contract.common import DEFAULT_TASK_QUEUE
from workflows.contract.names import SA, VIOLATION_CASE_WORKFLOW, violation_case_id
from workflows.rules.penalties import penalty_problems

# Fee disputes: the helpers live in starter.client (they tell a settled piece from one that never existed).
raise_dispute = client_helpers.raise_dispute
resolve_dispute = client_helpers.resolve_dispute


async def issue_notice(client: Client, notice: vc.ViolationCaseInput, task_queue: str = DEFAULT_TASK_QUEUE) -> str:
    """Starts the case: every penalty acts at once (AM-19). Issuing the same case id again starts nothing.
    A notice with a penalty that does not fit (e.g. a credit-score deduction for a client) is refused here, with
    every problem named, before anything starts (the workflow checks the same and fails otherwise)."""
    problems = [f"penalties[{i}].{problem}" for i, p in enumerate(notice.penalties) for problem in penalty_problems(
        notice.party_kind, p.kind, until_at=p.until_at, amount_fen=p.amount_fen, points=p.points,
        deduct_when_final=p.deduct_when_final, notice_at=notice.notice_at,
        task_id=p.task_id)]
    if problems:
        raise Refused("PenaltyNoticeRefused", problems)
    workflow_id = violation_case_id(notice.case_id)
    party = SA.CREATOR_ID if notice.party_kind is vc.PartyKind.CREATOR else SA.CLIENT_ID
    with contextlib.suppress(WorkflowAlreadyStartedError):  # a case with this id exists: its notice came before
        await client.start_workflow(
            VIOLATION_CASE_WORKFLOW, notice, id=workflow_id, task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=TypedSearchAttributes([SearchAttributePair(party, notice.party_id)]),
            static_summary=f"violation case {notice.case_id} against {notice.party_kind.value} {notice.party_id}")
    return workflow_id


async def appeal(client: Client, case_id: str, request: vc.AppealRequest) -> vc.AppealReceipt:
    return await _update(client, violation_case_id(case_id), "appeal", request, vc.AppealReceipt)


async def decide_appeal(client: Client, case_id: str, request: vc.DecideAppealRequest) -> vc.ViolationCaseView:
    return await _update(client, violation_case_id(case_id), "decide_appeal", request, vc.ViolationCaseView)


async def mark_complex(client: Client, case_id: str, request: vc.MarkComplexRequest) -> vc.ViolationCaseView:
    return await _update(client, violation_case_id(case_id), "mark_complex", request, vc.ViolationCaseView)


async def lift_freeze(client: Client, case_id: str, request: vc.LiftFreezeRequest) -> vc.ViolationCaseView:
    """AM-22: an operator lifts a standing freeze with a reason."""
    return await _update(client, violation_case_id(case_id), "lift_freeze", request, vc.ViolationCaseView)


async def case_state(client: Client, case_id: str) -> vc.ViolationCaseView:
    state: vc.ViolationCaseView = await client.get_workflow_handle(violation_case_id(case_id)).query(
        "state", result_type=vc.ViolationCaseView)
    return state
