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

# PostgreSQL: every statement is a round trip, so a posting's steps (activities/ledger_postings.py `_post`) run on
# the server in one call, in the caller's transaction or as one of their own (docs/bench.md, 2026-12-04 ledger).
# The guarantees stay with the constraints above (UNIQUE id, business key and pending_id; the accounts' CHECKs):
# the functions only save the trips. CREATE OR REPLACE cannot change a function's parameters or answer columns:
# changing those takes a DROP FUNCTION before.
POSTGRESQL_FUNCTIONS = """
-- Creates the accounts named that are missing (with their may_go_negative flag) and locks each, one after the
-- other in code-point order (COLLATE "C", the order of Python's sorted()): every transaction of the ledger takes
-- its account locks in that order, so concurrent ones queue instead of deadlocking.
CREATE OR REPLACE FUNCTION ledger_lock_accounts(p_names TEXT[], p_may_go_negative INTEGER[], p_created_at TEXT)
RETURNS VOID LANGUAGE plpgsql AS $$
DECLARE
    account RECORD;
BEGIN
    FOR account IN SELECT u.name, u.negative FROM unnest(p_names, p_may_go_negative) AS u (name, negative)
                   ORDER BY u.name COLLATE "C" LOOP
        INSERT INTO accounts (name, may_go_negative, created_at) VALUES (account.name, account.negative, p_created_at)
            ON CONFLICT DO NOTHING;
        PERFORM 1 FROM accounts a WHERE a.name = account.name FOR UPDATE;
    END LOOP;
END $$;

-- Posts one transfer (and releases by p_released the hold it resolves), the steps of `_post` in one call:
-- 1. A key posted before returns its transfer (transfers never change) and moves nothing; a hold resolved before
--    returns the key that resolved it.
-- 2. Both accounts' counters move, in name order (so the row locks of the two UPDATEs are taken in the order
--    every ledger transaction takes them), each only if the account's CHECKs will hold on the new values (the
--    guard is those CHECKs).
-- 3. The transfer is inserted; its UNIQUE id / business key / pending_id refuse a key (or a resolution) that a
--    concurrent transaction wrote while this one waited for the accounts.
-- Not posted: the counters this call moved are moved back, so that nothing it wrote is left (it creates no
-- account), and the outcome says why: 'duplicate' (the first transfer in r_*), 'resolved' (the resolving key in
-- detail), 'missing' (an account does not exist yet), 'insufficient' (the debit account cannot pay) or
-- 'collided'. The caller creates and locks the accounts (ledger_lock_accounts) and asks again after the last two.
CREATE OR REPLACE FUNCTION ledger_post(
    p_id TEXT, p_business_key TEXT, p_debit TEXT, p_credit TEXT, p_amount BIGINT, p_kind TEXT, p_memo TEXT,
    p_created_at TEXT, p_pending_id TEXT, p_corrects_id TEXT, p_status TEXT, p_released BIGINT,
    OUT outcome TEXT, OUT detail TEXT, OUT r_id TEXT, OUT r_business_key TEXT, OUT r_debit_account TEXT,
    OUT r_credit_account TEXT, OUT r_amount_fen BIGINT, OUT r_kind TEXT, OUT r_memo TEXT, OUT r_created_at TEXT,
    OUT r_pending_id TEXT, OUT r_corrects_id TEXT, OUT r_status TEXT)
LANGUAGE plpgsql AS $$
DECLARE
    v_posted BIGINT := CASE WHEN p_status IN ('posted', 'posted_pending') THEN p_amount ELSE 0 END;
    v_pending BIGINT := (CASE WHEN p_status = 'pending' THEN p_amount ELSE 0 END) - p_released;
    v_debit_first BOOLEAN := p_debit COLLATE "C" < p_credit COLLATE "C";
    v_debit_moved BOOLEAN := FALSE;
    v_credit_moved BOOLEAN := FALSE;
    v_refused TEXT;
BEGIN
    SELECT 'duplicate', t.id, t.business_key, t.debit_account, t.credit_account, t.amount_fen, t.kind, t.memo,
           t.created_at, t.pending_id, t.corrects_id, t.status
        INTO outcome, r_id, r_business_key, r_debit_account, r_credit_account, r_amount_fen, r_kind, r_memo,
             r_created_at, r_pending_id, r_corrects_id, r_status
        FROM transfers t WHERE t.id = p_id;
    IF FOUND THEN
        RETURN;
    END IF;
    IF p_pending_id IS NOT NULL THEN
        SELECT 'resolved', t.business_key INTO outcome, detail FROM transfers t WHERE t.pending_id = p_pending_id;
        IF FOUND THEN
            RETURN;
        END IF;
    END IF;
    FOR v_turn IN 1..2 LOOP
        IF v_debit_first = (v_turn = 1) THEN
            UPDATE accounts a SET debits_posted = a.debits_posted + v_posted,
                                  debits_pending = a.debits_pending + v_pending
                WHERE a.name = p_debit AND a.debits_pending + v_pending >= 0
                  AND (a.may_go_negative = 1
                       OR a.credits_posted - (a.debits_posted + v_posted) - (a.debits_pending + v_pending) >= 0);
            v_debit_moved := FOUND;
            v_refused := 'insufficient';
        ELSE
            UPDATE accounts a SET credits_posted = a.credits_posted + v_posted,
                                  credits_pending = a.credits_pending + v_pending
                WHERE a.name = p_credit AND a.credits_pending + v_pending >= 0;
            v_credit_moved := FOUND;
            v_refused := 'collided';
        END IF;
        IF NOT FOUND THEN
            IF NOT EXISTS (SELECT 1 FROM accounts a WHERE a.name IN (p_debit, p_credit) HAVING count(*) = 2) THEN
                v_refused := 'missing';
            END IF;
            EXIT;
        END IF;
    END LOOP;
    IF v_debit_moved AND v_credit_moved THEN
        INSERT INTO transfers (id, business_key, debit_account, credit_account, amount_fen, kind, memo, created_at,
                               pending_id, corrects_id, status)
            VALUES (p_id, p_business_key, p_debit, p_credit, p_amount, p_kind, p_memo, p_created_at, p_pending_id,
                    p_corrects_id, p_status)
            ON CONFLICT DO NOTHING;
        IF FOUND THEN
            outcome := 'posted';
            RETURN;
        END IF;
        v_refused := 'collided';
    END IF;
    IF v_debit_moved THEN
        UPDATE accounts a SET debits_posted = a.debits_posted - v_posted, debits_pending = a.debits_pending - v_pending
            WHERE a.name = p_debit;
    END IF;
    IF v_credit_moved THEN
        UPDATE accounts a SET credits_posted = a.credits_posted - v_posted,
                              credits_pending = a.credits_pending - v_pending
            WHERE a.name = p_credit;
    END IF;
    SELECT 'duplicate', t.id, t.business_key, t.debit_account, t.credit_account, t.amount_fen, t.kind, t.memo,
           t.created_at, t.pending_id, t.corrects_id, t.status
        INTO outcome, r_id, r_business_key, r_debit_account, r_credit_account, r_amount_fen, r_kind, r_memo,
             r_created_at, r_pending_id, r_corrects_id, r_status
        FROM transfers t WHERE t.id = p_id;
    IF FOUND THEN
        RETURN;
    END IF;
    IF p_pending_id IS NOT NULL AND v_refused <> 'missing' THEN
        outcome := 'resolved';
        detail := COALESCE((SELECT t.business_key FROM transfers t WHERE t.pending_id = p_pending_id),
                           'a concurrent resolution');
    ELSE
        outcome := v_refused;
    END IF;
END $$;
"""

# The DDL Database.ensure_schema runs, per dialect (the held pieces' table references task_budgets).
SQLITE_SCHEMA = TABLES + HOLDS_SCHEMA + SQLITE_IMMUTABLE
POSTGRESQL_SCHEMA = TABLES + HOLDS_SCHEMA + POSTGRESQL_IMMUTABLE + POSTGRESQL_FUNCTIONS
