"""The refund of a mount task in parts (SPEC AM-13 and its Reading), for MountTaskWorkflow.

A piece held by a fee dispute (AM-17) or by a penalty freezing its creator's fees (AM-19) may wait for weeks. It
does not keep the rest of the task frozen: it lists itself as held in the ledger (mounted_content._record_hold),
and the task reads that list with its closures (closure_looks: no message from any piece). Once the period has
ended and every open piece is a held one, the task asks the ledger for a refund part: everything in escrow but
the reserve the held pieces may still cost (activities/ledger_holds.py computes it under the task's budget lock,
rules in workflows/rules/fees.refund_reserve). Each time held pieces close, another part; when the last piece
closes, the final refund (`refund:{task_id}`, as before) returns what is left and closes the task's money.

Each part has its own key, `refund:{task_id}:part:{n}`: a retry, crash or replay gets the first answer.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from ports import ledger
    from ports.ledger import RefundPartRequest
    from workflows.contract import mount_task as c

from workflows import metrics
from workflows.escalation import Stalls

# Runs that record this marker refund in parts while pieces are held; older ones refund once, at the very end.
PARTIAL_REFUNDS_PATCH = "am-13-refund-in-parts"
# A mount whose instant lies in the period is still accepted this long after its end (AM-6): no part before, so
# that its conversions find the budget still free.
LATE_MOUNT_GRACE = timedelta(hours=24)
CLOSED = ("settled", "closed")


def part_due(s: c.MountTaskState, open_not_held: int | None = None) -> bool:
    """The period has ended (and its late mounts are in), every open piece is held, and fewer are held than
    when the last part was refunded (or none was)."""
    if s.stage is not c.TaskStage.ENDED or s.ended_at is None or s.published is None:
        return False
    if workflow.now() < s.ended_at + LATE_MOUNT_GRACE:
        return False
    if not 0 < s.pieces_open <= len(s.held_content_ids):
        return False
    if open_not_held is not None:  # the register is in the database: it counted them (task_register.RegisterLooks)
        if open_not_held > 0:
            return False
    else:
        held = set(s.held_content_ids)
        if any(p.status not in CLOSED and cid not in held for cid, p in s.pieces.items()):
            return False
    return not s.refund_parts or s.pieces_open < len(s.refund_parts[-1].held_content_ids)


async def refund_part_if_due(s: c.MountTaskState, stalls: Stalls, open_not_held: int | None = None) -> None:
    """AM-13: posts the next refund part when one is due (after a look at the ledger's closures and holds)."""
    # part_due is False without published terms: the patch marker is asked in the same cases as ever.
    if (p := s.published) is None or not part_due(s, open_not_held) or not workflow.patched(PARTIAL_REFUNDS_PATCH):
        return
    part = len(s.refund_parts) + 1
    result = await stalls.call(f"refund part {part}", ledger.REFUND_PART,
                               RefundPartRequest(task_id=s.task_id, client_id=p.client_id, part=part))
    s.refund_parts.append(c.RefundPart(
        part=part, key=f"refund:{s.task_id}:part:{part}", refunded_fen=result.refunded_fen,
        refunded_at=workflow.now(), reserve_fen=result.reserve_fen, held_content_ids=result.held_content_ids))
    s.refunded_fen += result.refunded_fen
    metrics.task_refunded("mount", result.refunded_fen)


def record_final_refund(s: c.MountTaskState, refunded_fen: int) -> None:
    """The last refund (every piece closed): what is refunded in all is the parts and this one."""
    s.refunded_fen = sum(p.refunded_fen for p in s.refund_parts) + refunded_fen
    s.refund_parts.append(c.RefundPart(part=len(s.refund_parts) + 1, key=f"refund:{s.task_id}",
                                       refunded_fen=refunded_fen, refunded_at=workflow.now(), final=True))


def describe(s: c.MountTaskState) -> str:
    """For the task's current details while it waits."""
    if not s.refund_parts:
        return f"; {len(s.held_content_ids)} held" if s.held_content_ids else ""
    return (f"; {len(s.held_content_ids)} held, {s.refunded_fen} fen refunded in {len(s.refund_parts)} part(s), "
            f"{s.refund_parts[-1].reserve_fen} fen kept for the held")
