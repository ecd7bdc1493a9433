"""When a mount task looks at the ledger for its pieces' closures (workflows/closure_looks.py; AM-8, AM-11,
AM-12, AM-13): nothing closes before its publicity window, so the task looks just after each window closes,
again soon while closures keep coming, and less and less often for pieces that wait for an operator."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from workflows.closure_looks import LOOK_AFTER, LOOK_AT_LEAST_EVERY, ClosureLooks
from workflows.contract import mount_task as mt

CST = timezone(timedelta(hours=8))
START = datetime(2026, 12, 1, 10, 0, tzinfo=CST)
DAY = timedelta(days=1)


def task(*mounts: tuple[str, datetime], ended_at: datetime | None = None,
         period_end_at: datetime = START + 30 * DAY) -> mt.MountTaskState:
    s = mt.MountTaskState(task_id="t1", stage=mt.TaskStage.ENDED if ended_at else mt.TaskStage.PUBLISHED,
                          ended_at=ended_at, published=mt.Published(
                              client_id="cl-1", terms=mt.PublishTaskRequest(task_id="t1", client_id="cl-1"),
                              budget_fen=100_000, period_start_at=START, period_end_at=period_end_at, price_fen=100))
    for content_id, mounted_at in mounts:
        s.pieces[content_id] = mt.PieceEntry(content_id=content_id, creator_id="cr-1", mounted_at=mounted_at)
        s.pieces_open += 1
    return s


def looks_of(s: mt.MountTaskState) -> ClosureLooks:
    assert s.published is not None
    return ClosureLooks(s, s.published)


def close(s: mt.MountTaskState, content_id: str) -> None:
    s.pieces[content_id].status = "settled"
    s.pieces_open -= 1


def test_am_11_the_first_look_is_just_after_the_earliest_window_closes() -> None:
    s = task(("late", START + 5 * DAY), ("early", START + DAY))
    looks = looks_of(s)
    # AM-8 + AM-11: 14-day billing period, then the 3-day publicity window, half-open, in business time.
    assert looks.next_window(START) == START + 18 * DAY
    assert looks.next_look(START, found=0) == START + 18 * DAY + LOOK_AFTER


def test_am_7_the_end_of_the_task_cuts_the_windows_it_waits_for() -> None:
    ended_at = START + 3 * DAY
    s = task(("p1", START + DAY), ended_at=ended_at)
    assert looks_of(s).next_look(ended_at, found=0) == ended_at + 3 * DAY + LOOK_AFTER


def test_am_12_closures_found_bring_another_look_soon_but_never_past_the_next_window() -> None:
    s = task(("p1", START), ("p2", START), ("p3", START + DAY))
    looks = looks_of(s)
    first_close = START + 17 * DAY
    close(s, "p1")
    now = first_close + LOOK_AFTER
    assert looks.next_look(now, found=1) == now + LOOK_AFTER
    close(s, "p2")
    later = now + LOOK_AFTER
    assert looks.next_look(later, found=1) == later + LOOK_AFTER
    # Nothing found and nothing overdue: straight to the next window (p3's, a day later).
    assert looks.next_look(later + LOOK_AFTER, found=0) == first_close + DAY + LOOK_AFTER
    assert looks.next_look(first_close + DAY - LOOK_AFTER, found=1) == first_close + DAY


def test_am_17_a_piece_held_past_its_window_is_looked_for_less_and_less_often() -> None:
    s = task(("held", START))
    looks = looks_of(s)
    now = START + 17 * DAY + LOOK_AFTER
    pauses = []
    for _ in range(14):
        look_at = looks.next_look(now, found=0)
        assert look_at is not None
        pauses.append(look_at - now)
        now = look_at
    assert pauses[:3] == [2 * LOOK_AFTER, 4 * LOOK_AFTER, 8 * LOOK_AFTER]
    assert max(pauses) == pauses[-1] == LOOK_AT_LEAST_EVERY
    # A closure found resets the pause.
    assert looks.next_look(now, found=1) == now + LOOK_AFTER


def test_am_17_a_held_piece_does_not_delay_the_look_at_the_next_window() -> None:
    s = task(("held", START), ("next", START + 10 * DAY))
    looks = looks_of(s)
    next_close = START + 27 * DAY
    now = next_close - timedelta(minutes=10)
    for _ in range(12):  # backed off to an hour by now
        looks.next_look(now - timedelta(hours=1), found=0)
    assert looks.next_look(now, found=0) == next_close + LOOK_AFTER


def test_am_13_no_look_once_every_piece_is_closed() -> None:
    s = task(("p1", START))
    looks = looks_of(s)
    close(s, "p1")
    assert looks.next_look(START + 20 * DAY, found=1) is None
    assert looks.next_window(START) is None


def test_am_6_a_new_mount_joins_the_schedule_in_window_order() -> None:
    s = task(("p2", START + 5 * DAY))
    looks = looks_of(s)
    s.pieces["p1"] = piece = mt.PieceEntry(content_id="p1", creator_id="cr-1", mounted_at=START + DAY)
    s.pieces_open += 1
    assert looks.add(piece) == START + 18 * DAY
    assert looks.next_look(START + 2 * DAY, found=0) == START + 18 * DAY + LOOK_AFTER
    close(s, "p1")
    assert looks.next_window(START + 2 * DAY) == START + 22 * DAY
