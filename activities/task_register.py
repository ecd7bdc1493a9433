"""The register of a mount task's creators and pieces, in the ledger's database (issue 21).

A task used to carry a register of every piece and creator in its workflow state (~190 bytes a piece, ~1.9 MB at
10,000 pieces, against Temporal's 2 MB payload limit). Runs that record `workflows.task_register.REGISTER_PATCH`
keep it here instead and carry only counts and sums. The database holds what the validators enforced: one mount
per content id in a task (the primary key) by a creator who joined it (the foreign key). A piece's status is not
stored twice: it is settled or closed when the ledger has its closure (`content_closures`, written with the
settlement), unmounted when it has a revocation instant, mounted otherwise.

Every write is idempotent: the task calls these as local activities, and a workflow task that failed after one
ran calls it again. A mount inserted twice returns the first row; the task counts its pieces by the row's number
(`seq`, 1, 2, ... per task), so a lost answer never counts a piece twice or not at all.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from activities.creator_pieces import DDL as CREATOR_PIECES_DDL
from activities.db import Database, Tx
from ports.task_register import (
    AcceptMount,
    CreatorRevoked,
    JoinCreator,
    Joined,
    MountAnswer,
    MountRecord,
    RegisteredPiece,
    RevokeCreator,
    RevokeOne,
    Windows,
    WindowsRequest,
    WithdrawRemoval,
)
from workflows.contract import mount_task as c
from workflows.contract.names import mounted_content_id

DDL = """
CREATE TABLE IF NOT EXISTS task_creators (
    task_id TEXT NOT NULL,
    creator_id TEXT NOT NULL,
    payee_account TEXT NOT NULL,
    joined_at TEXT NOT NULL,
    authorization_in_force INTEGER NOT NULL CHECK (authorization_in_force IN (0, 1)),
    revoked_all_at TEXT,
    removed_by_case TEXT,
    PRIMARY KEY (task_id, creator_id)
);
CREATE TABLE IF NOT EXISTS task_pieces (
    task_id TEXT NOT NULL,
    content_id TEXT NOT NULL,
    creator_id TEXT NOT NULL,
    mounted_at TEXT NOT NULL,
    seq BIGINT NOT NULL CHECK (seq > 0),
    revoked_at TEXT,
    PRIMARY KEY (task_id, content_id),
    UNIQUE (task_id, seq),
    FOREIGN KEY (task_id, creator_id) REFERENCES task_creators (task_id, creator_id)
);
CREATE INDEX IF NOT EXISTS task_pieces_by_creator ON task_pieces (task_id, creator_id);
CREATE INDEX IF NOT EXISTS task_pieces_by_mount ON task_pieces (task_id, mounted_at);
"""

# Instants are stored in UTC with a fixed width, so that text order is time order.
_FORMAT = "%Y-%m-%dT%H:%M:%S.%f+00:00"
_OPEN = ("NOT EXISTS (SELECT 1 FROM content_closures k WHERE k.task_id = p.task_id"
         " AND k.content_id = p.content_id)")
_PIECE = ("SELECT p.content_id, p.creator_id, p.mounted_at, p.revoked_at, p.seq, k.outcome, k.fee_fen,"
          " k.platform_fee_fen FROM task_pieces p LEFT JOIN content_closures k"
          " ON k.task_id = p.task_id AND k.content_id = p.content_id")
_CREATOR = ("SELECT creator_id, payee_account, joined_at, authorization_in_force, revoked_all_at, removed_by_case"
            " FROM task_creators")


def _text(instant: datetime | None) -> str | None:
    return None if instant is None else instant.astimezone(UTC).strftime(_FORMAT)


def _instant(text: Any) -> datetime | None:
    return None if text is None else datetime.fromisoformat(str(text))


class TaskRegister:
    def __init__(self, db: Database) -> None:
        self.db = db
        db.ensure_schema(CREATOR_PIECES_DDL + DDL, CREATOR_PIECES_DDL + DDL)

    # ------------------------------------------------------------ reads
    def creator(self, tx: Tx, task_id: str, creator_id: str) -> c.CreatorEntry | None:
        row = tx.fetchone(f"{_CREATOR} WHERE task_id = ? AND creator_id = ?", (task_id, creator_id))
        return None if row is None else self._creator(row)

    def piece(self, tx: Tx, task_id: str, content_id: str) -> RegisteredPiece | None:
        row = tx.fetchone(f"{_PIECE} WHERE p.task_id = ? AND p.content_id = ?", (task_id, content_id))
        return None if row is None else self._piece(row)

    def pieces_page(self, task_id: str, after_seq: int = 0, limit: int = 500) -> list[RegisteredPiece]:
        """The task's pieces in the order they were mounted, after `after_seq` (a page of a listing)."""
        with self.db.transaction() as tx:
            rows = tx.fetchall(f"{_PIECE} WHERE p.task_id = ? AND p.seq > ? ORDER BY p.seq LIMIT ?",
                               (task_id, after_seq, limit))
        return [self._piece(r) for r in rows]

    def creators_page(self, task_id: str, after_creator_id: str = "", limit: int = 500) -> list[c.CreatorEntry]:
        with self.db.transaction() as tx:
            rows = tx.fetchall(f"{_CREATOR} WHERE task_id = ? AND creator_id > ? ORDER BY creator_id LIMIT ?",
                               (task_id, after_creator_id, limit))
        return [self._creator(r) for r in rows]

    def windows(self, request: WindowsRequest) -> Windows:
        """Windows close at min(mount + 14 days, cut) + 3 days (AM-8, AM-11): later for a later mount, so the first
        open window is the earliest open mount's, and the next after `now` the earliest open mount after
        now - 17 days (none once cut + 3 days has passed)."""
        from workflows.rules.billing import billing_period_end, publicity_window_closes_at

        def closes(mounted_at: datetime) -> datetime:
            return publicity_window_closes_at(billing_period_end(mounted_at, request.cut_at))

        where = f"FROM task_pieces p WHERE p.task_id = ? AND p.seq <= ? AND {_OPEN}"
        with self.db.transaction() as tx:
            first, count = tx.fetchone(f"SELECT MIN(p.mounted_at), COUNT(*) {where}",
                                       (request.task_id, request.up_to_seq)) or (None, 0)
            upcoming = None
            if closes(request.cut_at) > request.now:
                row = tx.fetchone(f"SELECT MIN(p.mounted_at) {where} AND p.mounted_at > ?",
                                  (request.task_id, request.up_to_seq, _text(request.now - timedelta(days=17))))
                upcoming = row[0] if row else None
            held = 0
            for start in range(0, len(request.held_content_ids), 500):
                ids = request.held_content_ids[start:start + 500]
                marks = ", ".join("?" * len(ids))
                row = tx.fetchone(f"SELECT COUNT(*) {where} AND p.content_id IN ({marks})",
                                  (request.task_id, request.up_to_seq, *ids))
                held += int(row[0]) if row else 0
        first_at, upcoming_at = _instant(first), _instant(upcoming)
        return Windows(first_closes_at=closes(first_at) if first_at else None,
                       next_closes_at=closes(upcoming_at) if upcoming_at else None,
                       open_pieces=int(count), open_not_held=int(count) - held)

    def open_pieces_after(self, task_id: str, after_seq: int, up_to_seq: int, limit: int,
                          creator_id: str | None = None, revoked_at: datetime | None = None) -> list[tuple[int, str]]:
        """(seq, content_id) of pieces still open, in order: the pages of a fan-out."""
        sql = f"SELECT p.seq, p.content_id FROM task_pieces p WHERE p.task_id = ? AND p.seq > ? AND p.seq <= ?" \
              f" AND {_OPEN}"
        params: list[Any] = [task_id, after_seq, up_to_seq]
        if creator_id is not None:
            sql += " AND p.creator_id = ? AND p.revoked_at = ?"
            params += [creator_id, _text(revoked_at)]
        with self.db.transaction() as tx:
            rows = tx.fetchall(sql + " ORDER BY p.seq LIMIT ?", (*params, limit))
        return [(int(r[0]), str(r[1])) for r in rows]

    # ------------------------------------------------------------ writes
    def join(self, task_id: str, entry: c.CreatorEntry) -> Joined:
        """AM-4, AM-5: a creator joins (again, after a revocation of all); joining twice returns the first entry."""
        with self.db.transaction() as tx:
            found = self.creator(tx, task_id, entry.creator_id)
            if found is not None and found.authorization_in_force:
                return Joined(entry=found, already_joined=True)
            if found is not None:
                entry = entry.model_copy(update={"revoked_all_at": found.revoked_all_at})
            tx.execute("INSERT INTO task_creators (task_id, creator_id, payee_account, joined_at,"
                       " authorization_in_force, revoked_all_at, removed_by_case) VALUES (?, ?, ?, ?, 1, ?, NULL)"
                       " ON CONFLICT (task_id, creator_id) DO UPDATE SET payee_account = excluded.payee_account,"
                       " joined_at = excluded.joined_at, authorization_in_force = 1, removed_by_case = NULL",
                       (task_id, entry.creator_id, entry.payee_account, _text(entry.joined_at),
                        _text(entry.revoked_all_at)))
        return Joined(entry=entry, already_joined=False)

    def mount(self, record: MountRecord) -> RegisteredPiece:
        """AM-6: records the mount, or returns the piece already recorded under this content id."""
        with self.db.transaction() as tx:
            return self._mount(tx, record)

    def _mount(self, tx: Tx, record: MountRecord) -> RegisteredPiece:
        if (found := self.piece(tx, record.task_id, record.content_id)) is not None:
            return found
        row = tx.fetchone("SELECT CAST(COALESCE(MAX(seq), 0) AS BIGINT) FROM task_pieces WHERE task_id = ?",
                          (record.task_id,))
        seq = (int(row[0]) if row else 0) + 1
        tx.execute("INSERT INTO task_pieces (task_id, content_id, creator_id, mounted_at, seq) VALUES (?, ?, ?, ?, ?)",
                   (record.task_id, record.content_id, record.creator_id, _text(record.mounted_at), seq))
        # the creator's pieces in any task (activities/creator_pieces.py), in the same commit: the start of
        # the piece's workflow records it again, changing nothing (one fsync a mount, as before the register).
        tx.execute("INSERT INTO creator_pieces (workflow_id, creator_id, task_id, content_id) VALUES (?, ?, ?, ?)"
                   " ON CONFLICT (workflow_id) DO NOTHING",
                   (mounted_content_id(record.task_id, record.content_id), record.creator_id, record.task_id,
                    record.content_id))
        found = self.piece(tx, record.task_id, record.content_id)
        assert found is not None
        return found

    def accept_mount(self, asked: AcceptMount, directory: Any) -> MountAnswer:
        """AM-6 and R-12 as MountTaskWorkflow decided them with the register in its state (mount_reports.
        mount_refusals, task_penalties), asked here in one call: a mount costs the task one marker event, as the
        penalty look-up alone did before, and two transactions (the directory's, the register's). A content id
        already recorded is answered with its piece (the handler answers a repeat, or refuses a conflicting report);
        refusals record nothing."""
        from workflows.rules.eligibility import creator_penalty_refusals
        from workflows.rules.mounts import mount_refusals

        task_id, request = asked.state.task_id, asked.request
        facts = directory.creator(request.creator_id) if asked.check_penalties else None
        with self.db.transaction() as tx:
            found = self.piece(tx, task_id, request.content_id)
            entry = self.creator(tx, task_id, request.creator_id)
            if found is not None:
                return MountAnswer(piece=found, existed=True, creator=entry)
            reasons = mount_refusals(asked.state, request, asked.now, late_reports=asked.late_reports,
                                     clock_skew=timedelta(seconds=asked.clock_skew_seconds), entry=entry)
            if not reasons and facts is not None:
                reasons = creator_penalty_refusals(facts, task_id)
            if reasons:
                return MountAnswer(creator=entry, refusals=reasons)
            piece = self._mount(tx, MountRecord(task_id=task_id, content_id=request.content_id,
                                                creator_id=request.creator_id, mounted_at=request.mounted_at))
        return MountAnswer(piece=piece, creator=entry)

    def join_creator(self, asked: JoinCreator, directory: Any) -> Joined:
        """A creator who joined and has not revoked is answered as joined (AM-5); otherwise the period must be open
        and the directory's facts allow it (AM-4, eligibility.creator_join_refusals), and the creator joins with
        the payee account the facts name."""
        from workflows.rules.eligibility import creator_join_refusals, payee_account

        with self.db.transaction() as tx:
            entry = self.creator(tx, asked.task_id, asked.creator_id)
        if entry is not None and entry.authorization_in_force:
            return Joined(entry=entry, already_joined=True)
        if asked.period_closed is not None:
            return Joined(entry=None, refusal_kind="PeriodClosed", reasons=[asked.period_closed])
        facts = directory.creator(asked.creator_id)
        if reasons := creator_join_refusals(facts, asked.task_id):
            return Joined(entry=None, refusal_kind="JoinRefused", reasons=reasons)
        return self.join(asked.task_id, c.CreatorEntry(creator_id=asked.creator_id, payee_account=payee_account(facts),
                                                       joined_at=asked.now))

    def revoke_content(self, request: RevokeOne) -> RegisteredPiece | None:
        """AM-14: the piece is unmounted at `revoked_at` unless it was already (then its first instant stands)."""
        with self.db.transaction() as tx:
            tx.execute("UPDATE task_pieces SET revoked_at = ? WHERE task_id = ? AND content_id = ?"
                       " AND revoked_at IS NULL AND NOT EXISTS (SELECT 1 FROM content_closures k"
                       " WHERE k.task_id = task_pieces.task_id AND k.content_id = task_pieces.content_id)",
                       (_text(request.revoked_at), request.task_id, request.content_id))
            return self.piece(tx, request.task_id, request.content_id)

    def revoke_creator(self, request: RevokeCreator) -> CreatorRevoked:
        """AM-15 (case_id None) or R-12 removal: the creator's mounted pieces are unmounted. A repeat changes
        nothing and answers with the pieces the first call unmounted."""
        with self.db.transaction() as tx:
            entry = self.creator(tx, request.task_id, request.creator_id)
            if entry is None:
                return CreatorRevoked(entry=None, changed=False)
            if (request.case_id is None and not entry.authorization_in_force) \
                    or (request.case_id is not None and entry.removed_by_case == request.case_id):
                at = entry.revoked_all_at
                return CreatorRevoked(entry=entry, changed=False, revoked_at=at,
                                      content_ids=self._revoked_at(tx, request, at) if at else [])
            pieces_at = request.pieces_at or request.now
            if request.case_id is not None:
                entry.removed_by_case = request.case_id
            if entry.authorization_in_force:
                entry.authorization_in_force, entry.revoked_all_at = False, request.now
            tx.execute("UPDATE task_creators SET authorization_in_force = ?, revoked_all_at = ?, removed_by_case = ?"
                       " WHERE task_id = ? AND creator_id = ?",
                       (int(entry.authorization_in_force), _text(entry.revoked_all_at), entry.removed_by_case,
                        request.task_id, request.creator_id))
            tx.execute("UPDATE task_pieces SET revoked_at = ? WHERE task_id = ? AND creator_id = ?"
                       " AND revoked_at IS NULL AND NOT EXISTS (SELECT 1 FROM content_closures k"
                       " WHERE k.task_id = task_pieces.task_id AND k.content_id = task_pieces.content_id)",
                       (_text(pieces_at), request.task_id, request.creator_id))
            return CreatorRevoked(entry=entry, changed=True, revoked_at=pieces_at,
                                  content_ids=self._revoked_at(tx, request, pieces_at))

    def withdraw_removal(self, request: WithdrawRemoval) -> bool:
        with self.db.transaction() as tx:
            return tx.execute("UPDATE task_creators SET removed_by_case = NULL WHERE task_id = ? AND creator_id = ?"
                              " AND removed_by_case = ?", (request.task_id, request.creator_id, request.case_id)) > 0

    # ------------------------------------------------------------ rows
    @staticmethod
    def _revoked_at(tx: Tx, request: RevokeCreator, at: datetime) -> list[str]:
        rows = tx.fetchall("SELECT content_id FROM task_pieces WHERE task_id = ? AND creator_id = ? AND revoked_at = ?"
                           " ORDER BY seq", (request.task_id, request.creator_id, _text(at)))
        return [str(r[0]) for r in rows]

    @staticmethod
    def _creator(row: tuple[Any, ...]) -> c.CreatorEntry:
        joined_at = _instant(row[2])
        assert joined_at is not None
        return c.CreatorEntry(creator_id=row[0], payee_account=row[1], joined_at=joined_at,
                              authorization_in_force=bool(row[3]), revoked_all_at=_instant(row[4]),
                              removed_by_case=row[5])

    @staticmethod
    def _piece(row: tuple[Any, ...]) -> RegisteredPiece:
        mounted_at = _instant(row[2])
        assert mounted_at is not None
        status = row[5] or ("unmounted" if row[3] is not None else "mounted")
        return RegisteredPiece(seq=int(row[4]), piece=c.PieceEntry(
            content_id=row[0], creator_id=row[1], mounted_at=mounted_at, status=status, revoked_at=_instant(row[3]),
            fee_fen=None if row[6] is None else int(row[6]),
            platform_fee_fen=None if row[7] is None else int(row[7])))
