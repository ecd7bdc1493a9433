"""The Xingguang task's state machine at an instant (R-5, XG-4..XG-8, R-9, R-11), as plain functions over the state.

`advance(state, now)` applies everything that time alone decides (silence approves, windows close, promotion ends,
pieces fall due for settlement, escalations); `next_deadline(state)` says when that next happens. The workflow calls
both around every wait, and runs the money activities for what `advance` marked due. No I/O, no Temporal.
"""

from __future__ import annotations

from datetime import datetime

from workflows.contract import xingguang_state as cs
from workflows.contract.xingguang import OrderTerms
from workflows.rules.xingguang_money import piece_platform_fee, provider_fee
from workflows.rules.xingguang_windows import (
    Interval,
    extended_end,
    objection_window_closes_at,
    paused_at_instant,
    promotion_starts_at,
    publicity_window_closes_at,
)

BEFORE_PUBLICATION = (cs.PieceStage.SELECTED, cs.PieceStage.PROVIDER_REVIEW, cs.PieceStage.REVISION,
                      cs.PieceStage.CLIENT_REVIEW, cs.PieceStage.APPROVED)
SUBMITTED_NOT_REJECTED = (cs.PieceStage.PROVIDER_REVIEW, cs.PieceStage.CLIENT_REVIEW, cs.PieceStage.APPROVED)
DONE = (cs.PieceStage.SETTLED, cs.PieceStage.CLOSED)
RUNNING = (cs.TaskStage.MATERIALS_REVIEW, cs.TaskStage.AWAITING_PROVIDER, cs.TaskStage.IN_PROGRESS)


def open_pause(p: cs.PauseRecord) -> bool:
    return p.resumed_at is None and p.refused_at is None and p.cancelled_at is None


def pause_intervals(s: cs.XingguangTaskState, piece_id: str | None) -> list[Interval]:
    """The pauses that stop this piece (task-wide ones, and its own), or the task-wide ones for None."""
    return [(p.paused_at, p.resumed_at or p.cancelled_at) for p in s.pauses
            if p.piece_id is None or (piece_id is not None and p.piece_id == piece_id)]


def is_paused(s: cs.XingguangTaskState, piece_id: str | None, now: datetime) -> bool:
    return paused_at_instant(now, pause_intervals(s, piece_id))


def task_promotion_end(s: cs.XingguangTaskState) -> datetime | None:
    """When the task's promotion ends: the billing period extended by task-wide pauses, or an earlier stop. None
    before the order (no billing period yet)."""
    if s.billing_start_at is None or s.billing_end_at is None:
        return None
    end = extended_end(s.billing_end_at, s.billing_start_at, pause_intervals(s, None))
    if s.promotion_stopped_at is not None:
        return s.promotion_stopped_at if end is None else min(end, s.promotion_stopped_at)
    return end


def piece_promotion_end(s: cs.XingguangTaskState, piece: cs.Piece) -> datetime | None:
    """R-9: a piece's promotion ends at the billing end extended by its pauses (task-wide and its own), or when
    promotion stops for the task or for this piece. None while a pause that counts is still running."""
    if piece.promotion_ends_at is not None:
        return piece.promotion_ends_at
    if s.billing_start_at is None or s.billing_end_at is None:  # before the order: no piece yet
        return None
    end = extended_end(s.billing_end_at, s.billing_start_at, pause_intervals(s, piece.piece_id))
    if s.promotion_stopped_at is not None:
        return s.promotion_stopped_at if end is None else min(end, s.promotion_stopped_at)
    return end


def publish_instant(s: cs.XingguangTaskState, piece: cs.Piece) -> datetime | None:
    """An approved piece is published at approval, or when the last pause that held it was lifted (XG-7); None
    for a piece not approved."""
    if (approved_at := piece.approved_at) is None:
        return None
    held_until = [end for start, end in pause_intervals(s, piece.piece_id)
                  if end is not None and start <= approved_at < end]
    return max([approved_at, *held_until])


def publish(s: cs.XingguangTaskState, piece: cs.Piece, at: datetime) -> None:
    """XG-4 / XG-11: published; licensed to the client for this task kind, long term; objection window opens."""
    if (ordered := cs.ordered(s)) is None or piece.content_id is None:
        return  # not published without an order and content (an approved piece of an ordered task has both)
    piece.stage, piece.published_at = cs.PieceStage.PUBLISHED, at
    piece.licence = cs.Licence(content_id=piece.content_id, licensee_client_id=ordered.client_id, granted_at=at)
    piece.objection_window_closes_at = objection_window_closes_at(at)
    piece.promotion_starts_at = promotion_starts_at(at, ordered.billing_start_at)


def end_promotion(piece: cs.Piece, at: datetime) -> None:
    """Promotion over for this piece: the 3-day publicity window for data disputes opens (XG-6)."""
    piece.promotion_ends_at = piece.promotion_due_to_end_at = at
    piece.publicity_window_closes_at = publicity_window_closes_at(at)
    piece.stage = cs.PieceStage.PUBLICITY


def open_case(case: cs.CaseRecord | None) -> bool:
    return case is not None and case.decided_at is None


def not_objected(piece: cs.Piece) -> bool:
    """No objection, or one that was dismissed: the content can be deemed accepted when its window closes."""
    return piece.objection is None or (piece.objection.outcome or "").startswith("dismissed")


def advance(s: cs.XingguangTaskState, now: datetime) -> None:
    """Everything time decides at `now`, in a fixed order (deterministic on replay)."""
    for pause in s.pauses:
        if pause.changes_due_at is not None and open_pause(pause) and now >= pause.changes_due_at:
            pause.deadline_missed = True
    for piece in s.pieces.values():
        _advance_piece(s, piece, now)
    if s.billing_end_at is not None:
        s.promotion_due_to_end_at = task_promotion_end(s)
    if s.stage in RUNNING and s.billing_end_at is not None:
        end = task_promotion_end(s)
        if end is not None and now >= end:
            s.end_reason = s.end_reason or "billing period over"
            start_settling(s)
    if s.stage is cs.TaskStage.STOPPED and not any(p.decision_needed for p in s.pieces.values()):
        s.stage = cs.TaskStage.SETTLING
    s.paused = any(open_pause(p) and p.piece_id is None for p in s.pauses)
    s.escalation_reasons = escalation_reasons(s, now)
    s.escalated = bool(s.escalation_reasons)
    s.next_deadline_at = next_deadline(s, now)[0]


def _advance_piece(s: cs.XingguangTaskState, piece: cs.Piece, now: datetime) -> None:
    if piece.stage is cs.PieceStage.CLIENT_REVIEW and piece.client_review_due_at and now >= piece.client_review_due_at:
        # XG-4: silence past the review deadline counts as approval.
        piece.reviews.append(cs.ReviewRecord(by="client_silence", approved=True, at=piece.client_review_due_at))
        piece.stage, piece.approved_at = cs.PieceStage.APPROVED, piece.client_review_due_at
    if (piece.stage is cs.PieceStage.APPROVED and s.stage is cs.TaskStage.IN_PROGRESS
            and s.promotion_stopped_at is None and not is_paused(s, piece.piece_id, now)
            and (at := publish_instant(s, piece)) is not None):
        publish(s, piece, at)
    if (piece.published_at is not None and piece.content_accepted_at is None and not_objected(piece)
            and piece.objection_window_closes_at is not None and now >= piece.objection_window_closes_at):
        piece.content_accepted_at = piece.objection_window_closes_at  # XG-5: deemed accepted
    if piece.stage is cs.PieceStage.PUBLISHED:
        end = piece.promotion_due_to_end_at = piece_promotion_end(s, piece)
        if end is not None and now >= end:
            end_promotion(piece, end)
    if (piece.stage is cs.PieceStage.PUBLICITY and not piece.decision_needed and piece.publicity_window_closes_at
            and now >= piece.publicity_window_closes_at and not open_case(piece.objection)
            and not open_case(piece.data_dispute)):
        piece.settlement_due = True
    for case in (piece.objection, piece.data_dispute):
        if open_case(case) and case is not None and now >= case.escalates_at:
            case.escalated = True


def start_settling(s: cs.XingguangTaskState) -> None:
    """Promotion is over for the task (R-11 ordinary end): pieces never published close unpaid, unless R-9 owes
    them their earnings; the others settle after their own publicity windows."""
    s.stage = cs.TaskStage.SETTLING
    for piece in s.pieces.values():
        if piece.stage in BEFORE_PUBLICATION and not piece.earns_full_on_cancel and not piece.decision_needed:
            close_unpaid(piece, "not published before promotion ended")


def close_unpaid(piece: cs.Piece, reason: str) -> None:
    piece.stage, piece.close_reason = cs.PieceStage.CLOSED, reason
    piece.settlement = cs.PieceMoney(payee_account=piece.payee_account)


def end_pauses(s: cs.XingguangTaskState, now: datetime) -> None:
    """Promotion stopped for good: pauses still open end with it (nothing is left to resume)."""
    for pause in s.pauses:
        if open_pause(pause):
            pause.cancelled_at = now


def cancel_for_delay(s: cs.XingguangTaskState, now: datetime) -> None:
    """R-9 "fees of the delay": promotion stops now; every piece submitted and not rejected, or published, is owed
    its full creator earnings and settles after a 3-day data window (those already in their window keep it);
    the others close unpaid."""
    s.promotion_stopped_at = now
    end_pauses(s, now)
    for piece in s.pieces.values():
        if piece.stage in SUBMITTED_NOT_REJECTED or piece.stage is cs.PieceStage.PUBLISHED:
            piece.earns_full_on_cancel = True
            end_promotion(piece, now)
    start_settling(s)


def stop(s: cs.XingguangTaskState, now: datetime) -> None:
    """R-11 fault stop: promotion stops now; every unsettled piece waits for an operator's decision (R-9)."""
    s.promotion_stopped_at = now
    end_pauses(s, now)
    s.stage = cs.TaskStage.STOPPED
    for piece in s.pieces.values():
        if piece.stage not in DONE:
            piece.decision_needed = True
            if piece.stage is cs.PieceStage.PUBLISHED:
                end_promotion(piece, now)


def settlement_amounts(s: cs.XingguangTaskState, piece: cs.Piece, terms: OrderTerms) -> cs.PieceMoney:
    """R-8: what a piece settles at; operator amounts (an upheld objection) win; a declined piece earns nothing but
    the promotion billed is still charged."""
    if piece.operator_amounts is not None:
        earnings, spend = piece.operator_amounts.creator_earnings_fen, piece.operator_amounts.promotion_spend_fen
    else:
        owed = (piece.published_at is not None or piece.earns_full_on_cancel) and piece.stop_decision != "decline"
        if piece.stop_decision == "settle":
            owed = True
        earnings, spend = (piece.agreed_earnings_fen if owed else 0), piece.billed_spend_fen
    fee = piece_platform_fee(earnings, spend, terms.platform_fee_rate_bp, terms.platform_fee_waived,
                             terms.platform_fee_frozen_fen, s.platform_fees_fen)
    return cs.PieceMoney(creator_earnings_fen=earnings, promotion_spend_fen=spend, platform_fee_fen=fee,
                         provider_fee_fen=provider_fee(earnings, terms.provider_fee_rate_bp),
                         payee_account=piece.payee_account)


def committed_fen(s: cs.XingguangTaskState, terms: OrderTerms) -> int:
    """Money the task has paid out or still owes at most (for the R-9 delay-fee limit)."""
    total = s.paid_to_creators_fen + s.promotion_spend_fen + s.platform_fees_fen
    for piece in s.pieces.values():
        if piece.stage not in DONE:
            owed = piece.agreed_earnings_fen + piece.billed_spend_fen
            total += owed + piece_platform_fee(owed, 0, terms.platform_fee_rate_bp, terms.platform_fee_waived,
                                               terms.platform_fee_frozen_fen, 0)
    return total


def ready_to_close(s: cs.XingguangTaskState) -> bool:
    return s.stage is cs.TaskStage.SETTLING and all(p.stage in DONE for p in s.pieces.values())


def escalation_reasons(s: cs.XingguangTaskState, now: datetime) -> list[str]:
    """What a human must act on now (the `escalated` search attribute)."""
    reasons = [f"pause {p.pause_id}: deadline for changes missed; cancel, or accept late changes" for p in s.pauses
               if open_pause(p) and p.deadline_missed]
    reasons += [f"pause {p.pause_id}: client refused changes; cancel the task" for p in s.pauses
                if p.refused_at is not None and p.cancelled_at is None and s.stage in RUNNING]
    undecided = sorted(p.piece_id for p in s.pieces.values() if p.decision_needed)
    if undecided:
        reasons.append(f"pieces awaiting a settle-or-decline decision: {', '.join(undecided)}")
    for piece in s.pieces.values():
        for name, case in (("objection", piece.objection), ("data dispute", piece.data_dispute)):
            if case is not None and open_case(case) and case.escalated:
                why = ("no working-day calendar for its deadline" if case.escalates_at == case.raised_at
                       else "undecided after 7 working days")
                reasons.append(f"piece {piece.piece_id}: {name} {why}")
    return reasons


def next_deadline(s: cs.XingguangTaskState, now: datetime) -> tuple[datetime | None, str]:
    """The next instant after `now` at which `advance` has something to do, and what it is (for the timer's
    summary). An instant already passed is not one: `advance` applied it, or it is held (a dispute, a decision),
    and then a message, not time, moves things on."""
    candidates: list[tuple[datetime, str]] = []
    for pause in s.pauses:
        if pause.changes_due_at is not None and open_pause(pause) and not pause.deadline_missed:
            candidates.append((pause.changes_due_at, f"changes due for pause {pause.pause_id}"))
    for piece in s.pieces.values():
        pid = piece.piece_id
        if piece.stage is cs.PieceStage.CLIENT_REVIEW and piece.client_review_due_at:
            candidates.append((piece.client_review_due_at, f"client review deadline of piece {pid}"))
        if (piece.published_at and piece.content_accepted_at is None and not_objected(piece)
                and piece.objection_window_closes_at):
            candidates.append((piece.objection_window_closes_at, f"objection window of piece {pid} closes"))
        if piece.stage is cs.PieceStage.PUBLISHED and (end := piece_promotion_end(s, piece)) is not None:
            candidates.append((end, f"promotion of piece {pid} ends"))
        if piece.stage is cs.PieceStage.PUBLICITY and piece.publicity_window_closes_at and not piece.settlement_due:
            candidates.append((piece.publicity_window_closes_at, f"publicity window of piece {pid} closes"))
        for name, case in (("objection", piece.objection), ("data dispute", piece.data_dispute)):
            if case is not None and open_case(case) and not case.escalated:
                candidates.append((case.escalates_at, f"{name} on piece {pid} escalates"))
    if s.stage in RUNNING and s.billing_end_at is not None and (end := task_promotion_end(s)) is not None:
        candidates.append((end, "billing period ends"))
    candidates = [pair for pair in candidates if pair[0] > now]
    if not candidates:
        return None, ""
    return min(candidates, key=lambda pair: pair[0])
