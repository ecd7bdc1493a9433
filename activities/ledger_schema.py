"""The ledger's tables (activities/ledger.py): accounts, immutable transfers, task budgets and their accruals, the
closures of pieces, and the results of compound operations; triggers that refuse changing a transfer, per dialect.
The guarantees of the module docstring of activities/ledger.py are held here, by constraints."""

from __future__ import annotations

from activities.ledger_holds import HOLDS_SCHEMA

TABLES = """
CREATE TABLE IF NOT EXISTS accounts (
    name TEXT PRIMARY KEY,
    may_go_negative INTEGER NOT NULL DEFAULT 0 CHECK (may_go_negative IN (0, 1)),
    debits_posted BIGINT NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
    credits_posted BIGINT NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
    debits_pending BIGINT NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
    credits_pending BIGINT NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
    created_at TEXT NOT NULL,
    CONSTRAINT available_not_negative
        CHECK (may_go_negative = 1 OR credits_posted - debits_posted - debits_pending >= 0)
);
CREATE TABLE IF NOT EXISTS transfers (
    id TEXT PRIMARY KEY,
    business_key TEXT NOT NULL UNIQUE,
    debit_account TEXT NOT NULL REFERENCES accounts (name),
    credit_account TEXT NOT NULL REFERENCES accounts (name),
    amount_fen BIGINT NOT NULL CHECK (amount_fen > 0),
    kind TEXT NOT NULL,
    memo TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    pending_id TEXT REFERENCES transfers (id),  -- a hold is resolved once: transfers_resolve_once
    corrects_id TEXT REFERENCES transfers (id),
    status TEXT NOT NULL CHECK (status IN ('posted', 'pending', 'posted_pending', 'voided_pending')),
    CHECK (debit_account <> credit_account),
    CHECK ((pending_id IS NULL) = (status IN ('posted', 'pending')))
);
CREATE INDEX IF NOT EXISTS transfers_by_debit ON transfers (debit_account);
CREATE INDEX IF NOT EXISTS transfers_by_credit ON transfers (credit_account);
-- Partial: most transfers resolve no hold and correct nothing, and an index entry for each of their NULLs cost
-- every posting two more b-tree pages to commit (docs/bench.md "Limits found" 8). Databases made before keep
-- their inline UNIQUE (pending_id) and full index as well; the guarantees are the same.
CREATE UNIQUE INDEX IF NOT EXISTS transfers_resolve_once ON transfers (pending_id) WHERE pending_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS transfers_by_correction ON transfers (corrects_id) WHERE corrects_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS task_budgets (
    task_id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    budget_fen BIGINT NOT NULL CHECK (budget_fen > 0),
    spent_fen BIGINT NOT NULL DEFAULT 0 CHECK (spent_fen >= 0 AND spent_fen <= budget_fen),
    settled_fen BIGINT NOT NULL DEFAULT 0 CHECK (settled_fen >= 0 AND settled_fen <= budget_fen),
    platform_fee_cap_fen BIGINT NOT NULL CHECK (platform_fee_cap_fen >= 0),
    platform_fee_charged_fen BIGINT NOT NULL DEFAULT 0
        CHECK (platform_fee_charged_fen >= 0 AND platform_fee_charged_fen <= platform_fee_cap_fen),
    exhausted_at TEXT,
    refunded_at TEXT
);
CREATE TABLE IF NOT EXISTS budget_accruals (
    task_id TEXT NOT NULL REFERENCES task_budgets (task_id),
    event_id TEXT NOT NULL,
    content_id TEXT NOT NULL,
    requested_count BIGINT NOT NULL CHECK (requested_count >= 0),
    price_fen BIGINT NOT NULL CHECK (price_fen >= 0),
    granted_count BIGINT NOT NULL CHECK (granted_count >= 0 AND granted_count <= requested_count),
    granted_fen BIGINT NOT NULL CHECK (granted_fen = granted_count * price_fen),
    occurred_at TEXT,
    released INTEGER NOT NULL DEFAULT 0 CHECK (released IN (0, 1)),
    PRIMARY KEY (task_id, event_id)
);
-- How each piece of content of a task closed, numbered per task in the order of settlement: the task reads it
-- from its last number (`task_closures`) instead of being sent a message by every piece (docs/bench.md 2b).
CREATE TABLE IF NOT EXISTS content_closures (
    task_id TEXT NOT NULL REFERENCES task_budgets (task_id),
    seq BIGINT NOT NULL CHECK (seq > 0),
    content_id TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('settled', 'closed')),
    fee_fen BIGINT NOT NULL CHECK (fee_fen >= 0),
    platform_fee_fen BIGINT NOT NULL CHECK (platform_fee_fen >= 0),
    closed_at TEXT NOT NULL,
    PRIMARY KEY (task_id, seq),
    UNIQUE (task_id, content_id)
);
CREATE TABLE IF NOT EXISTS operations (
    key TEXT PRIMARY KEY,
    result_json TEXT,
    created_at TEXT NOT NULL
);
"""
SQLITE_IMMUTABLE = """
CREATE TRIGGER IF NOT EXISTS transfers_refuse_update BEFORE UPDATE ON transfers
BEGIN SELECT RAISE(ABORT, 'ledger transfers are immutable: post a correction'); END;
CREATE TRIGGER IF NOT EXISTS transfers_refuse_delete BEFORE DELETE ON transfers
BEGIN SELECT RAISE(ABORT, 'ledger transfers are immutable: post a correction'); END;
"""
POSTGRESQL_IMMUTABLE = """
CREATE OR REPLACE FUNCTION ledger_refuse_transfer_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger transfers are immutable: post a correction (% refused)', TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END $$;
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'transfers_immutable'
                   AND tgrelid = 'transfers'::regclass) THEN
        CREATE TRIGGER transfers_immutable BEFORE UPDATE OR DELETE ON transfers
            FOR EACH ROW EXECUTE FUNCTION ledger_refuse_transfer_change();
    END IF;
END $$;
"""

# The DDL Database.ensure_schema runs, per dialect (the held pieces' table references task_budgets).
SQLITE_SCHEMA = TABLES + HOLDS_SCHEMA + SQLITE_IMMUTABLE
POSTGRESQL_SCHEMA = TABLES + HOLDS_SCHEMA + POSTGRESQL_IMMUTABLE
