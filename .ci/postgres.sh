#!/usr/bin/env bash
# Makes a PostgreSQL server ready for the ledger tests, idempotently: installs it where it is missing, starts the
# first cluster (creating one if there is none), ensures role `ledger` (password `ledger`) and database `ledger`,
# waits until it accepts TCP connections, and prints the DSN on its last line; with an argument, also writes the DSN
# to that file. (Read it from the file, not with $(...): the server it starts inherits the script's stdout, so a
# command substitution would wait for the server to exit.)
set -euo pipefail
dsn_file=${1:-}

role=ledger password=ledger database=ledger

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }

if ! command -v pg_lsclusters >/dev/null 2>&1; then
    echo "postgres.sh: installing PostgreSQL"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql
fi

read -r version cluster port status _ < <(pg_lsclusters --no-header | head -n 1) || true
if [ -z "${version:-}" ]; then
    version=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)
    [ -n "$version" ] || { echo "postgres.sh: no PostgreSQL server binaries under /usr/lib/postgresql"; exit 1; }
    echo "postgres.sh: creating cluster $version/main"
    as_root pg_createcluster "$version" main
    read -r version cluster port status _ < <(pg_lsclusters --no-header | head -n 1)
fi
if [ "$status" != "online" ]; then
    echo "postgres.sh: starting cluster $version/$cluster on port $port"
    as_root pg_ctlcluster "$version" "$cluster" start </dev/null
fi

for _ in $(seq 1 60); do
    pg_isready -q -h 127.0.0.1 -p "$port" && break
    sleep 1
done
pg_isready -h 127.0.0.1 -p "$port" || { echo "postgres.sh: cluster $version/$cluster does not accept connections"; exit 1; }

psql_admin() { as_postgres psql -X -q -v ON_ERROR_STOP=1 -p "$port" -d postgres -tA "$@"; }
if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$role'")" != 1 ]; then
    psql_admin -c "CREATE ROLE $role LOGIN PASSWORD '$password'"
else
    psql_admin -c "ALTER ROLE $role LOGIN PASSWORD '$password'"
fi
if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$database'")" != 1 ]; then
    psql_admin -c "CREATE DATABASE $database OWNER $role"
fi

dsn="postgresql://$role:$password@127.0.0.1:$port/$database"
PGPASSWORD=$password psql -X -q -h 127.0.0.1 -p "$port" -U "$role" -d "$database" -tA -c "SELECT 1" >/dev/null
echo "postgres.sh: PostgreSQL $version ready"
[ -z "$dsn_file" ] || echo "$dsn" > "$dsn_file"
echo "$dsn"
