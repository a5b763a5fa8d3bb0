#!/bin/sh
# The Compose broker: RabbitMQ, then one user per service with only its own permissions
# (definitions.json: its queues, the three exchanges, and on commerce.events the routing keys
# of its own events). Passwords come from RABBITMQ_<SERVICE>_PASSWORD, piped to rabbitmqctl
# so they never show in a process list. The health check passes only once this is done.
set -eu
ready=/tmp/commerce-users-ready
services="inventory orders payments"
rm -f "$ready"

docker-entrypoint.sh rabbitmq-server &
server=$!
trap 'kill -TERM "$server"; wait "$server"; exit $?' TERM INT

fail() {
    echo "commerce-start: $1" >&2
    kill -TERM "$server"
    wait "$server" || true
    exit 1
}

# Each check is retried while the server boots (bounded). The server writes the Erlang
# cookie first: a CLI started before it would write one of its own that the server refuses.
retry() {
    tries=0
    until "$@" >/dev/null 2>&1; do
        kill -0 "$server" 2>/dev/null || fail "rabbitmq-server exited"
        tries=$((tries + 1))
        [ "$tries" -le 90 ] || fail "gave up waiting for: $*"
        sleep 2
    done
}
retry test -s "${HOME:-/var/lib/rabbitmq}/.erlang.cookie"
retry rabbitmqctl -q await_startup --timeout 10

for service in $services; do
    variable="RABBITMQ_$(echo "$service" | tr '[:lower:]' '[:upper:]')_PASSWORD"
    password=$(printenv "$variable" || true)
    [ -n "$password" ] || fail "$variable is not set: no $service broker user"
    if rabbitmqctl -q list_users | cut -f1 | grep -qx "$service"; then
        printf '%s' "$password" | rabbitmqctl -q change_password "$service"
    else
        printf '%s' "$password" | rabbitmqctl -q add_user "$service"
    fi
done
rabbitmqctl -q import_definitions /etc/rabbitmq/commerce-definitions.json
# The import is asynchronous: ready once every user holds its topic permission.
for service in $services; do
    retry sh -c "rabbitmqctl -q list_user_topic_permissions $service | grep -q commerce.events"
done
touch "$ready"
wait "$server"
