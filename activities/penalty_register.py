"""Penalties in the directory (AM-18..AM-22, R-12, R-13): restrictions, credit score and held settlements, in the
directory's database; the eligibility flags of activities/directory.py follow the restrictions in force."""

from __future__ import annotations

from pydantic import BaseModel

from activities.db import Database, Tx
from activities.directory_schema import DDL, PENALTY_DDL

# Restrictions that act through the directory's eligibility flags (AM-1, AM-4); the others are read by the systems they
# concern (event sign-ups, in-flight tasks, the account service) through `active_restrictions`.
CREATOR_FLAG_RESTRICTIONS = {
    "mount_barred": ("bar_from_mount_tasks", "ban_account"),
    "order_taking_closed": ("close_order_taking", "restrict_account", "ban_account"),
}
CLIENT_FLAG_RESTRICTIONS = {
    "penalty_restricted": ("restrict_account", "ban_account", "bar_from_mount_tasks"),
}
FEE_FREEZES = ("freeze_fees", "deduct_fees")
# a creator's own settlements are also held while their in-flight tasks are frozen, by cases that act on
# tasks (listed in penalty_holding_freezes): a case started before that never releases what such a freeze holds.
IN_FLIGHT_FREEZE = "freeze_in_flight_tasks"


def payee_party(payee_account: str | None) -> str | None:
    """R-13: the party a payee account belongs to (`agency:X:payable` -> X, `creator:C:payable` -> C): a freeze
    of that party's fees holds what would pay it."""
    if payee_account is None:
        return None
    parts = payee_account.split(":")
    return parts[1] if len(parts) == 3 and parts[0] in ("agency", "creator") and parts[2] == "payable" else None


class ActiveRestriction(BaseModel):
    case_id: str
    penalty_id: str
    restriction: str
    until_at: str | None
    applied_at: str


class HeldSettlement(BaseModel):
    workflow_id: str
    creator_id: str
    case_id: str
    task_id: str
    content_id: str
    fee_fen: int


class PenaltyRegister:
    """What penalties a party is under, in the directory's database. Every write is idempotent by (case, penalty)
    or by the content workflow's id; the eligibility flags are kept equal to "any active restriction maps to it,
    else what the flag was before the first one"."""

    def __init__(self, db: Database) -> None:
        self.db = db
        db.ensure_schema(DDL, DDL)  # payable_account reads the creator's kind
        db.ensure_schema(PENALTY_DDL, PENALTY_DDL)

    def apply_restriction(self, case_id: str, penalty_id: str, party_kind: str, party_id: str, restriction: str,
                          until_at: str | None, applied_at: str, task_id: str | None = None,
                          holds_settlements: bool = False) -> None:
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO penalty_restrictions (case_id, penalty_id, party_kind, party_id, restriction, until_at,"
                " applied_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (case_id, penalty_id) DO NOTHING",
                [case_id, penalty_id, party_kind, party_id, restriction, until_at, applied_at])
            if holds_settlements and restriction == IN_FLIGHT_FREEZE:
                tx.execute("INSERT INTO penalty_holding_freezes (case_id, penalty_id) VALUES (?, ?)"
                           " ON CONFLICT (case_id, penalty_id) DO NOTHING", [case_id, penalty_id])
            if task_id is not None:
                tx.execute("INSERT INTO penalty_task_removals (case_id, penalty_id, task_id) VALUES (?, ?, ?)"
                           " ON CONFLICT (case_id, penalty_id) DO NOTHING", [case_id, penalty_id, task_id])
            self._sync_flags(tx, party_kind, party_id)

    def lift_restriction(self, case_id: str, penalty_id: str, reason: str, lifted_at: str) -> bool:
        """Returns False when there is no such restriction (nothing to lift)."""
        with self.db.transaction() as tx:
            row = tx.fetchone("SELECT party_kind, party_id FROM penalty_restrictions WHERE case_id = ? AND"
                              " penalty_id = ?", [case_id, penalty_id], for_update=True)
            if row is None:
                return False
            tx.execute("UPDATE penalty_restrictions SET lifted_at = ?, lift_reason = ? WHERE case_id = ? AND"
                       " penalty_id = ? AND lifted_at IS NULL", [lifted_at, reason, case_id, penalty_id])
            self._sync_flags(tx, row[0], row[1])
            return True

    def active_restrictions(self, party_kind: str, party_id: str) -> list[ActiveRestriction]:
        with self.db.transaction() as tx:
            rows = tx.fetchall("SELECT case_id, penalty_id, restriction, until_at, applied_at FROM"
                               " penalty_restrictions WHERE party_kind = ? AND party_id = ? AND lifted_at IS NULL"
                               " ORDER BY applied_at, case_id, penalty_id", [party_kind, party_id])
        return [ActiveRestriction(case_id=r[0], penalty_id=r[1], restriction=r[2], until_at=r[3], applied_at=r[4])
                for r in rows]

    def deduct_credit(self, case_id: str, penalty_id: str, party_kind: str, party_id: str, points: int,
                      deducted_at: str) -> None:
        with self.db.transaction() as tx:
            tx.execute("INSERT INTO penalty_credit_deductions (case_id, penalty_id, party_kind, party_id, points,"
                       " deducted_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (case_id, penalty_id) DO NOTHING",
                       [case_id, penalty_id, party_kind, party_id, points, deducted_at])

    def restore_credit(self, case_id: str, penalty_id: str, restored_at: str) -> None:
        with self.db.transaction() as tx:
            tx.execute("UPDATE penalty_credit_deductions SET restored_at = ? WHERE case_id = ? AND penalty_id = ?"
                       " AND restored_at IS NULL", [restored_at, case_id, penalty_id])

    def credit_points_deducted(self, party_kind: str, party_id: str) -> int:
        """Points currently deducted from the party's credit score by penalties (restored ones excluded)."""
        with self.db.transaction() as tx:
            row = tx.fetchone("SELECT CAST(COALESCE(SUM(points), 0) AS BIGINT) FROM penalty_credit_deductions"
                              " WHERE party_kind = ? AND party_id = ? AND restored_at IS NULL", [party_kind, party_id])
        return int(row[0]) if row else 0

    def hold_settlement(self, held: HeldSettlement, held_at: str, payee_account: str | None = None) -> str | None:
        """AM-19: when the creator's fees are frozen (or, R-12, their in-flight tasks), or (R-13) the fees of the
        party `payee_account` belongs to, records the settlement as held by the oldest freezing case and returns
        that case id; otherwise None. In one transaction with the freeze rows locked, so a case that lifts its
        freeze either sees this row when it releases, or this call sees the freeze lifted."""
        payee = payee_party(payee_account)
        with self.db.transaction() as tx:
            first = tx.fetchone("SELECT case_id, released_at FROM penalty_held_settlements WHERE workflow_id = ?",
                                [held.workflow_id], for_update=True)
            if first is not None:
                return None if first[1] is not None else str(first[0])
            case_id = self._freezing_case(tx, held.creator_id, exclude_case=None, payee=payee)
            if case_id is None:
                return None
            if payee is not None and payee != held.creator_id:
                tx.execute("INSERT INTO penalty_held_payees (workflow_id, payee_party) VALUES (?, ?)"
                           " ON CONFLICT (workflow_id) DO NOTHING", [held.workflow_id, payee])
            tx.execute("INSERT INTO penalty_held_settlements (workflow_id, creator_id, case_id, task_id, content_id,"
                       " fee_fen, held_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       [held.workflow_id, held.creator_id, case_id, held.task_id, held.content_id, held.fee_fen,
                        held_at])
            return case_id

    def held_to_release(self, case_id: str, limit: int) -> tuple[list[HeldSettlement], int]:
        """Up to `limit` settlements held by `case_id` that may now be released, and how many were passed on to
        another case that still freezes the same creator's fees (those stay held, by that case)."""
        passed_on = 0
        with self.db.transaction() as tx:
            rows = tx.fetchall("SELECT workflow_id, creator_id, case_id, task_id, content_id, fee_fen FROM"
                               " penalty_held_settlements WHERE case_id = ? AND released_at IS NULL"
                               " ORDER BY held_at, workflow_id LIMIT ?", [case_id, limit], for_update=True)
            free: list[HeldSettlement] = []
            for row in rows:
                payee = tx.fetchone("SELECT payee_party FROM penalty_held_payees WHERE workflow_id = ?", [row[0]])
                other = self._freezing_case(tx, row[1], exclude_case=case_id, payee=payee[0] if payee else None)
                if other is not None:
                    tx.execute("UPDATE penalty_held_settlements SET case_id = ? WHERE workflow_id = ?", [other, row[0]])
                    passed_on += 1
                    continue
                free.append(HeldSettlement(workflow_id=row[0], creator_id=row[1], case_id=row[2], task_id=row[3],
                                           content_id=row[4], fee_fen=int(row[5])))
        return free, passed_on

    def mark_released(self, workflow_ids: list[str], outcome: str, released_at: str) -> None:
        with self.db.transaction() as tx:
            for workflow_id in workflow_ids:
                tx.execute("UPDATE penalty_held_settlements SET released_at = ?, outcome = ? WHERE workflow_id = ?"
                           " AND released_at IS NULL", [released_at, outcome, workflow_id])

    def held_settlements(self, creator_id: str) -> list[tuple[str, str, str | None]]:
        """(workflow_id, case_id, outcome) of every settlement of the creator ever held, for operators."""
        with self.db.transaction() as tx:
            rows = tx.fetchall("SELECT workflow_id, case_id, outcome FROM penalty_held_settlements WHERE"
                               " creator_id = ? ORDER BY held_at, workflow_id", [creator_id])
        return [(r[0], r[1], r[2]) for r in rows]

    def _freezing_case(self, tx: Tx, creator_id: str, exclude_case: str | None, payee: str | None = None
                       ) -> str | None:
        rows = tx.fetchall("SELECT case_id, applied_at FROM penalty_restrictions r WHERE party_kind = 'creator' AND"
                           " party_id = ? AND lifted_at IS NULL AND (restriction IN (?, ?) OR (restriction = ? AND"
                           " EXISTS (SELECT 1 FROM penalty_holding_freezes h WHERE h.case_id = r.case_id AND"
                           " h.penalty_id = r.penalty_id)))",
                           [creator_id, *FEE_FREEZES, IN_FLIGHT_FREEZE], for_update=True)
        if payee is not None and payee != creator_id:  # the agency an MCN creator's fees are paid to
            rows += tx.fetchall("SELECT case_id, applied_at FROM penalty_restrictions WHERE party_kind = 'creator'"
                                " AND party_id = ? AND restriction IN (?, ?) AND lifted_at IS NULL",
                                [payee, *FEE_FREEZES], for_update=True)
        return next((str(r[0]) for r in sorted(rows, key=lambda r: (str(r[1]), str(r[0])))
                     if r[0] != exclude_case), None)

    def payable_account(self, party_kind: str, party_id: str) -> str:
        """Where a party's unwithdrawn money is: an agency's payable (R-13), a creator's payable, a client's
        available balance."""
        if party_kind != "creator":
            return f"client:{party_id}:available"
        with self.db.transaction() as tx:
            row = tx.fetchone("SELECT kind FROM directory_creators WHERE creator_id = ?", [party_id])
        return f"agency:{party_id}:payable" if row and row[0] == "agency" else f"creator:{party_id}:payable"

    def _sync_flags(self, tx: Tx, party_kind: str, party_id: str) -> None:
        table, key, mapping = (("directory_creators", "creator_id", CREATOR_FLAG_RESTRICTIONS)
                               if party_kind == "creator" else
                               ("directory_clients", "client_id", CLIENT_FLAG_RESTRICTIONS))
        for flag, restrictions in mapping.items():
            marks = ", ".join("?" for _ in restrictions)
            active = tx.fetchone(f"SELECT COUNT(*) FROM penalty_restrictions WHERE party_kind = ? AND party_id = ?"
                                 f" AND lifted_at IS NULL AND restriction IN ({marks})",
                                 [party_kind, party_id, *restrictions])
            baseline = tx.fetchone("SELECT baseline FROM penalty_flag_baselines WHERE party_kind = ? AND"
                                   " party_id = ? AND flag = ?", [party_kind, party_id, flag])
            if active and int(active[0]) > 0:
                if baseline is None:
                    current = tx.fetchone(f"SELECT {flag} FROM {table} WHERE {key} = ?", [party_id])
                    tx.execute("INSERT INTO penalty_flag_baselines (party_kind, party_id, flag, baseline)"
                               " VALUES (?, ?, ?, ?)", [party_kind, party_id, flag, int(current[0]) if current else 0])
                tx.execute(f"UPDATE {table} SET {flag} = 1 WHERE {key} = ?", [party_id])
            elif baseline is not None:
                tx.execute(f"UPDATE {table} SET {flag} = ? WHERE {key} = ?", [int(baseline[0]), party_id])
                tx.execute("DELETE FROM penalty_flag_baselines WHERE party_kind = ? AND party_id = ? AND flag = ?",
                           [party_kind, party_id, flag])
