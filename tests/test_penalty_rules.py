"""R-12, R-13, AM-22 as plain rules and register operations: refusals naming the case, what a penalty may carry,
and which settlements a freeze holds (SQLite, and PostgreSQL with LEDGER_TEST_PG_DSN)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest

from activities.directory import HeldSettlement
from tests.helpers import creator
from tests.ledger_fixtures import ledger_dsn_fixture, postgresql_schema_dsn_fixture  # noqa: F401
from tests.violation_helpers import register
from worker import Adapters
from workflows.rules.clock import BUSINESS_TZ
from workflows.rules.eligibility import (
    CreatorFacts,
    CreatorKind,
    PenaltyFact,
    creator_join_refusals,
    creator_penalty_refusals,
)
from workflows.rules.penalties import PartyKind, PenaltyKind, liftable, penalty_problems

NOTICE = datetime(2026, 12, 1, 10, tzinfo=BUSINESS_TZ)


def test_r12_refusals_name_each_case_and_a_removal_only_in_its_task() -> None:
    facts = CreatorFacts(creator_id="cr-1", onboarded=True, mount_barred=True, penalties=[
        PenaltyFact(case_id="v-1", penalty_id="p2", restriction="bar_from_mount_tasks"),
        PenaltyFact(case_id="v-2", penalty_id="p1", restriction="remove_from_task", task_id="t-9"),
        PenaltyFact(case_id="v-3", penalty_id="p1", restriction="restrict_event_signups"),
    ])
    barred = "creator cr-1 is barred from authorized-mount tasks by violation case v-1 (penalty p2)"
    assert creator_join_refusals(facts, "t-1") == [barred]  # the flag's own reason is not repeated
    assert creator_penalty_refusals(facts, "t-9") == [
        barred, "creator cr-1 was removed from this task by violation case v-2 (penalty p1)"]
    flag_only = CreatorFacts(creator_id="cr-2", onboarded=True, mount_barred=True)  # set without a case
    assert creator_join_refusals(flag_only, "t-1") == ["creator is restricted from authorized-mount tasks"]


def test_am_22_r12_what_a_penalty_may_carry() -> None:
    def problems(kind: PenaltyKind, **fields: object) -> list[str]:
        args: dict[str, object] = {"until_at": None, "amount_fen": None, "points": None,
                                   "deduct_when_final": False, "task_id": None, **fields}
        return penalty_problems(PartyKind.CREATOR, kind, notice_at=NOTICE, **args)  # type: ignore[arg-type]

    later = datetime(2026, 12, 21, 10, tzinfo=BUSINESS_TZ)
    assert problems(PenaltyKind.FREEZE_FEES, until_at=later) == []  # AM-22: a freeze may have a set end
    assert problems(PenaltyKind.FREEZE_FEES, until_at=later, deduct_when_final=True) == [
        "until_at: a freeze marked to be deducted has no end: it is deducted when the case is final"]
    assert problems(PenaltyKind.REMOVE_FROM_TASK) == [
        "task_id: remove_from_task needs the task the party is removed from"]
    assert problems(PenaltyKind.BAR_FROM_MOUNT_TASKS, task_id="t-1") == [
        "task_id: only remove_from_task names a task; bar_from_mount_tasks takes none"]
    assert penalty_problems(PartyKind.CLIENT, PenaltyKind.REMOVE_FROM_TASK, until_at=None, amount_fen=None,
                            points=None, deduct_when_final=False, notice_at=NOTICE, task_id="t-1") == []
    assert liftable(PenaltyKind.FREEZE_FEES, False) and liftable(PenaltyKind.FREEZE_IN_FLIGHT_TASKS, False)
    assert not liftable(PenaltyKind.FREEZE_FEES, True) and not liftable(PenaltyKind.DEDUCT_FEES, False)


class TestR13RegisterHolds:
    @pytest.fixture
    def adapters(self, ledger_dsn: str) -> Iterator[Adapters]:
        opened = Adapters.open(ledger_dsn)
        try:
            yield opened
        finally:
            opened.db.close()

    def test_r13_a_freeze_of_the_payee_holds_and_passes_on_to_the_creators_own_freeze(self,
                                                                                      adapters: Adapters) -> None:
        reg = register(adapters)
        held = HeldSettlement(workflow_id="mount-content:t:c1", creator_id="cr-m", case_id="", task_id="t",
                              content_id="c1", fee_fen=1_000)
        at = "2026-12-01T10:00:00+08:00"
        reg.apply_restriction("other", "p1", "creator", "ag-2", "freeze_fees", None, at)  # another agency
        assert reg.hold_settlement(held, at, "agency:ag-1:payable") is None
        reg.apply_restriction("a", "p1", "creator", "ag-1", "freeze_fees", None, at)
        reg.apply_restriction("old", "p1", "creator", "cr-m", "freeze_in_flight_tasks", None, at)  # before R-12
        assert reg.hold_settlement(held, at) is None  # a case that does not act on tasks holds nothing
        reg.apply_restriction("b", "p1", "creator", "cr-m", "freeze_in_flight_tasks", None,
                              "2026-12-02T10:00:00+08:00", holds_settlements=True)
        assert reg.hold_settlement(held, at, "agency:ag-1:payable") == "a"  # the agency's freeze is older
        reg.lift_restriction("a", "p1", "appeal upheld", at)
        assert reg.held_to_release("a", 10) == ([], 1)  # the creator's own freeze still holds it: passed to b
        reg.lift_restriction("b", "p1", "lifted: cooperated", at)
        free, passed_on = reg.held_to_release("b", 10)
        assert ([h.workflow_id for h in free], passed_on) == (["mount-content:t:c1"], 0)

    def test_r13_an_agencys_fee_freeze_reaches_its_own_payable(self, adapters: Adapters) -> None:
        creator(adapters, "ag-1", CreatorKind.AGENCY)
        reg = register(adapters)
        assert reg.payable_account("creator", "ag-1") == "agency:ag-1:payable"
        assert reg.payable_account("creator", "cr-1") == "creator:cr-1:payable"
        assert reg.payable_account("client", "client-1") == "client:client-1:available"
