#!/bin/sh
# One-shot (temporalio/admin-tools): creates Temporal's two databases in PostgreSQL and brings their schemas up to
# the version of this admin-tools image with temporal-sql-tool. Safe to run again: an existing database is kept,
# and update-schema applies only the versions not yet applied.
set -eu
: "${POSTGRES_SEEDS:?}" "${POSTGRES_USER:?}" "${SQL_PASSWORD:?}"
port=${DB_PORT:-5432}
schema_root=/etc/temporal/schema/postgresql/v12

sql_tool() {
    temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "$port" -u "$POSTGRES_USER" --db "$@"
}

for database in temporal temporal_visibility; do
    case $database in
        temporal) versions=$schema_root/temporal/versioned ;;
        *) versions=$schema_root/visibility/versioned ;;
    esac
    echo "setup-schema: $database"
    sql_tool "$database" create
    sql_tool "$database" setup-schema -v 0.0
    sql_tool "$database" update-schema -d "$versions"
done
echo "setup-schema: done"
