#!/bin/sh
# One-shot (temporalio/admin-tools), after the server is healthy: creates the namespace and registers the
# project's search attributes, then checks that each is there with its type. Safe to run again.
#
# SEARCH_ATTRIBUTES ("name=Type ...", set in docker-compose.yml) must equal
# workflows.contract.names.ALL_SEARCH_ATTRIBUTES: tests/test_compose.py compares them.
set -eu
: "${TEMPORAL_ADDRESS:?}" "${SEARCH_ATTRIBUTES:?}"
namespace=${TEMPORAL_NAMESPACE:-default}
retention=${NAMESPACE_RETENTION:-720h}

attempt=0
until temporal operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1; do
    attempt=$((attempt + 1))
    [ "$attempt" -lt 60 ] || { echo "setup-namespace: server at $TEMPORAL_ADDRESS is not healthy"; exit 1; }
    sleep 2
done

if temporal operator namespace describe --address "$TEMPORAL_ADDRESS" -n "$namespace" >/dev/null 2>&1; then
    echo "setup-namespace: namespace $namespace exists"
else
    temporal operator namespace create --address "$TEMPORAL_ADDRESS" -n "$namespace" --retention "$retention"
    echo "setup-namespace: namespace $namespace created (retention $retention)"
fi

# A new namespace takes a moment to reach every frontend cache: retry until each attribute is listed.
for pair in $SEARCH_ATTRIBUTES; do
    name=${pair%%=*}
    type=${pair#*=}
    attempt=0
    until temporal operator search-attribute list --address "$TEMPORAL_ADDRESS" -n "$namespace" \
            | grep -Eq "^[[:space:]]*$name[[:space:]]+$type[[:space:]]*$"; do
        attempt=$((attempt + 1))
        [ "$attempt" -le 30 ] || { echo "setup-namespace: search attribute $name ($type) could not be registered"; exit 1; }
        temporal operator search-attribute create --address "$TEMPORAL_ADDRESS" -n "$namespace" \
            --name "$name" --type "$type" >/dev/null 2>&1 || sleep 2
    done
    echo "setup-namespace: search attribute $name ($type) registered"
done
echo "setup-namespace: done"
