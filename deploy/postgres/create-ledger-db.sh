#!/bin/sh
# One-shot (postgres image): gives the ledger its own role and database on the PostgreSQL server, apart from
# Temporal's. Safe to run again. The worker creates the ledger's tables itself (activities/db.py).
set -eu
: "${PGHOST:?}" "${PGUSER:?}" "${PGPASSWORD:?}" "${LEDGER_DB:?}" "${LEDGER_USER:?}" "${LEDGER_PASSWORD:?}"

psql_admin() { psql -X -v ON_ERROR_STOP=1 -d postgres -tA "$@"; }

if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$LEDGER_USER'")" = 1 ]; then
    psql_admin -q -c "ALTER ROLE \"$LEDGER_USER\" LOGIN PASSWORD '$LEDGER_PASSWORD'"
else
    psql_admin -q -c "CREATE ROLE \"$LEDGER_USER\" LOGIN PASSWORD '$LEDGER_PASSWORD'"
fi
if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$LEDGER_DB'")" != 1 ]; then
    psql_admin -q -c "CREATE DATABASE \"$LEDGER_DB\" OWNER \"$LEDGER_USER\""
fi
# Only its owner (and superusers) may connect to the ledger.
psql_admin -q -c "REVOKE ALL ON DATABASE \"$LEDGER_DB\" FROM PUBLIC"
echo "create-ledger-db: database $LEDGER_DB owned by $LEDGER_USER is ready"
