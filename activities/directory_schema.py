"""The directory's tables (activities/directory.py) and the penalty register's beside them
(activities/penalty_register.py): one database, two modules that read both."""

from __future__ import annotations

DDL = """
CREATE TABLE IF NOT EXISTS directory_clients (
    client_id TEXT PRIMARY KEY,
    active INTEGER NOT NULL DEFAULT 0,
    qualification_passed INTEGER NOT NULL DEFAULT 0,
    corporate_verified INTEGER NOT NULL DEFAULT 0,
    brand_certified INTEGER NOT NULL DEFAULT 0,
    penalty_restricted INTEGER NOT NULL DEFAULT 0,
    mount_allow_listed INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS directory_agencies (
    agency_id TEXT PRIMARY KEY,
    deposit_ever_deducted INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS directory_creators (
    creator_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('natural', 'pgc', 'mcn', 'agency')),
    agency_id TEXT,
    onboarded INTEGER NOT NULL DEFAULT 0,
    order_taking_closed INTEGER NOT NULL DEFAULT 0,
    mount_barred INTEGER NOT NULL DEFAULT 0
);
"""

PENALTY_DDL = """
CREATE TABLE IF NOT EXISTS penalty_restrictions (
    case_id TEXT NOT NULL,
    penalty_id TEXT NOT NULL,
    party_kind TEXT NOT NULL CHECK (party_kind IN ('creator', 'client')),
    party_id TEXT NOT NULL,
    restriction TEXT NOT NULL,
    until_at TEXT,
    applied_at TEXT NOT NULL,
    lifted_at TEXT,
    lift_reason TEXT,
    PRIMARY KEY (case_id, penalty_id)
);
CREATE INDEX IF NOT EXISTS penalty_restrictions_by_party ON penalty_restrictions (party_kind, party_id);
CREATE TABLE IF NOT EXISTS penalty_flag_baselines (
    party_kind TEXT NOT NULL,
    party_id TEXT NOT NULL,
    flag TEXT NOT NULL,
    baseline INTEGER NOT NULL CHECK (baseline IN (0, 1)),
    PRIMARY KEY (party_kind, party_id, flag)
);
CREATE TABLE IF NOT EXISTS penalty_credit_deductions (
    case_id TEXT NOT NULL,
    penalty_id TEXT NOT NULL,
    party_kind TEXT NOT NULL,
    party_id TEXT NOT NULL,
    points INTEGER NOT NULL CHECK (points > 0),
    deducted_at TEXT NOT NULL,
    restored_at TEXT,
    PRIMARY KEY (case_id, penalty_id)
);
CREATE TABLE IF NOT EXISTS penalty_held_settlements (
    workflow_id TEXT PRIMARY KEY,
    creator_id TEXT NOT NULL,
    case_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    content_id TEXT NOT NULL,
    fee_fen BIGINT NOT NULL CHECK (fee_fen >= 0),
    held_at TEXT NOT NULL,
    released_at TEXT,
    outcome TEXT
);
CREATE INDEX IF NOT EXISTS penalty_held_by_case ON penalty_held_settlements (case_id, released_at);
CREATE TABLE IF NOT EXISTS penalty_task_removals (
    case_id TEXT NOT NULL,
    penalty_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    PRIMARY KEY (case_id, penalty_id)
);
CREATE TABLE IF NOT EXISTS penalty_holding_freezes (
    case_id TEXT NOT NULL,
    penalty_id TEXT NOT NULL,
    PRIMARY KEY (case_id, penalty_id)
);
CREATE TABLE IF NOT EXISTS penalty_held_payees (
    workflow_id TEXT PRIMARY KEY,
    payee_party TEXT NOT NULL
);
"""
