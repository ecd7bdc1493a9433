"""The harness of the duplicate-delivery tests (tests/test_duplicates*.py; issue 7, item 3). No tests here.

How a duplicate is checked (`twice`): the message is delivered, the workflows involved are let go quiet (no
workflow task or activity in flight), their `state` query (as a whole model dump) and every table of the database
(ledger accounts and postings, the budget counter and its accruals, the XG event register, the directory, the
penalty register, the vault, the outbox) are read; the same message (same payload, same event or request id) is
delivered again and everything is read again: it must be equal. Left out of the comparison are only the fields that
count messages received rather than their effects (`RECEIPT_FIELDS`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from starter import client as api
from starter.client import Refused
from tests import helpers as h
from tests.conftest import Ctx, wait_until_quiet
from workflows.contract import account as ac
from workflows.contract import data_subject_request as dsr
from workflows.contract import security_incident as inc
from workflows.contract import violation_case as vc
from workflows.contract import xingguang as xg
from workflows.contract import xingguang_state as xgs
from workflows.contract.names import (
    mount_task_id,
    mounted_content_id,
)
from workflows.contract.views import MountedContentView, MountTaskView
from workflows.contract.xingguang_claims import XingguangClaimsView

HOUR, SECOND = timedelta(hours=1), timedelta(seconds=1)

# Fields of the `state` views that record receipt, not effect: the XG count of batches received and its
# ledger-operation sequence (each delivery is one claim in the event register, which answers "duplicate" the second
# time), the account's count of activity reports received and when its obligations were last checked (a repeated
# signal re-checks; the answer is the same).
RECEIPT_FIELDS: dict[type[BaseModel], set[str]] = {
    MountTaskView: set(),
    MountedContentView: set(),
    vc.ViolationCaseView: set(),
    xgs.XingguangTaskView: {"batches_received"},
    ac.AccountView: {"activities_recorded", "obligations_checked_at"},
    dsr.DataSubjectRequestView: set(),
    inc.SecurityIncidentView: set(),
    XingguangClaimsView: set(),
}


# ---------------------------------------------------------------------------------------------------- the harness
@dataclass(frozen=True)
class Watched:
    """A workflow whose `state` is compared, read as `model`."""

    workflow_id: str
    model: type[BaseModel]


def task_w(task: str) -> Watched:
    return Watched(mount_task_id(task), MountTaskView)


def content_w(task: str, content_id: str) -> Watched:
    return Watched(mounted_content_id(task, content_id), MountedContentView)


def world(ctx: Ctx) -> dict[str, list[str]]:
    """Every row of every table of the test's database: ledger, budget counter, registers, vault, outbox."""
    with ctx.a.db.transaction() as tx:
        tables = [r[0] for r in tx.fetchall("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {t: sorted(repr(row) for row in tx.fetchall(f"SELECT * FROM {t}")) for t in tables}


async def observe(ctx: Ctx, watched: tuple[Watched, ...]) -> dict[str, Any]:
    await wait_until_quiet(ctx, [w.workflow_id for w in watched])
    seen: dict[str, Any] = {}
    for w in watched:
        state = await ctx.client.get_workflow_handle(w.workflow_id).query("state", result_type=w.model)
        seen[w.workflow_id] = state.model_dump(mode="json", exclude=RECEIPT_FIELDS[w.model])
    seen["database"] = world(ctx)
    return seen


async def attempt(send: Callable[[], Awaitable[Any]]) -> Any:
    """The answer, or the refusal (a Refused carries its kind and reasons)."""
    try:
        return await send()
    except Refused as refusal:
        return refusal


def differences(once: Any, again: Any, path: str = "") -> list[str]:
    if isinstance(once, dict) and isinstance(again, dict):
        return [d for k in sorted(set(once) | set(again), key=str)
                for d in differences(once.get(k), again.get(k), f"{path}.{k}")]
    if isinstance(once, list) and isinstance(again, list) and once != again and len(once) == len(again):
        return [d for i, (a, b) in enumerate(zip(once, again, strict=True)) for d in differences(a, b, f"{path}[{i}]")]
    return [] if once == again else [f"{path}: {once!r} -> {again!r}"]


async def repeat(ctx: Ctx, send: Callable[[], Awaitable[Any]], *watched: Watched) -> Any:
    """Delivers a message that was delivered before, again; asserts it changed nothing; returns its answer."""
    once = await observe(ctx, watched)
    answer = await attempt(send)
    again = await observe(ctx, watched)
    changed = differences(once, again)
    assert not changed, "the second delivery changed:\n" + "\n".join(changed[:30])
    return answer


async def twice(ctx: Ctx, send: Callable[[], Awaitable[Any]], *watched: Watched) -> tuple[Any, Any]:
    """Delivers a message, then the same message again (`repeat`); returns both answers."""
    first = await attempt(send)
    assert not isinstance(first, Refused), f"the first delivery was refused: {first}"
    return first, await repeat(ctx, send, *watched)


def refused_naming(answer: Any, kind: str, *words: str) -> None:
    """A typed refusal whose reasons name the repeat."""
    assert isinstance(answer, Refused), f"expected a refusal, got {answer!r}"
    text = "; ".join(answer.reasons)
    assert answer.kind == kind and all(w in text for w in words), (answer.kind, text)



# ---------------------------------------------------------------------------------------------------- AM: the task
async def joined_and_mounted(ctx: Ctx, name: str, *, budget_fen: int = 100_000) -> tuple[str, datetime]:
    """A published task (price 100 fen, 30 days), creator cr-1 joined, content c1 mounted now."""
    task = f"t-{name}-{ctx.uid}"
    await h.published_task(ctx, task, budget_fen=budget_fen)
    h.creator(ctx.a, "cr-1")
    await api.join(ctx.client, task, "cr-1")
    t0 = await h.business_now(ctx)
    await h.mount(ctx, task, "c1", "cr-1", t0)
    return task, t0



async def content_update(ctx: Ctx, task: str, name: str, request: BaseModel, result_type: type[Any]) -> Any:
    return await api._update(ctx.client, mounted_content_id(task, "c1"), name, request, result_type)




def xg_w(task: str) -> Watched:
    return Watched(xg.xg_task_workflow_id(task), xgs.XingguangTaskView)


def same_status(first: xgs.TaskStatus, second: xgs.TaskStatus) -> None:
    """A TaskStatus says when the command was answered (`applied_at`); the rest must be the first answer."""
    assert second.model_dump(exclude={"applied_at"}) == first.model_dump(exclude={"applied_at"})




def closed_or_refused(answer: Any, kind: str, *words: str) -> None:
    """The repeat of the command that lets the workflow finish: refused by the validator while the workflow still
    runs (naming the repeat), or refused as NotRunning once it has closed. Either way it changes nothing."""
    if isinstance(answer, Refused) and answer.kind == "NotRunning":
        return
    refused_naming(answer, kind, *words)


