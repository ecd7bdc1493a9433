"""A command sent again after the fact (issue 23): the same request is answered with the first answer; another one
is refused naming the first and each field it differs in. Pure functions: the workflows refuse with them, and the
Python client with the same words once a workflow has closed."""

from __future__ import annotations

from pydantic import BaseModel

from workflows.contract import xingguang as xg
from workflows.contract import xingguang_state as xgs
from workflows.rules.clock import business_time


def differing_fields(first: BaseModel, again: BaseModel, done: str) -> list[str]:
    """One reason per field in which `again` differs from the `first` request acted on: `<field>: <done> <first
    value>, this asks <its value>`."""
    before, after = first.model_dump(mode="json"), again.model_dump(mode="json")
    return [f"{name}: {done} {before[name]!r}, this asks {after[name]!r}"
            for name in type(first).model_fields if getattr(first, name) != getattr(again, name, None)]


def cancel_after_pause_conflict(s: xgs.XingguangTaskFacts, delay_fee_fen: int, first: xgs.PauseRecord,
                                asked: xg.CancelAfterPauseRequest | None, request: xg.CancelAfterPauseRequest
                                ) -> list[str]:
    """Nothing when `request` repeats the cancellation of task `s` after pause `first` (with its `delay_fee_fen`);
    else the first cancellation (when, by whom, the delay fee) and each field this request differs in. `asked` is
    the first request when it is known (else its delay fee and reason are the task's, and the operator is named by
    the end reason only)."""
    when = f" at {business_time(first.cancelled_at)}" if first.cancelled_at is not None else ""
    if asked is None:
        asked = request.model_copy(update={"pause_id": first.pause_id, "delay_fee_fen": delay_fee_fen,
                                           "delay_fee_reason": s.delay_fee_reason or ""})
        who = ""
    else:
        who = f" by {asked.operator_id}"
    differences = differing_fields(asked, request, "cancelled with")
    if not differences:
        return []
    return [f"pause_id: task {s.task_id} was already cancelled after pause {first.pause_id}{when}{who} with a delay "
            f"fee of {delay_fee_fen} fen ({s.end_reason})",
            *differences]
