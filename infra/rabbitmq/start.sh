#!/bin/sh
# The Compose broker: RabbitMQ, then one user per service with only its own permissions
# (definitions.json: its queues, the two exchanges, and on commerce.events the routing keys
# of its own events). Passwords come from RABBITMQ_<SERVICE>_PASSWORD, piped to rabbitmqctl
# so they never show in a process list. The health check passes only once this is done.
set -eu
ready=/tmp/commerce-users-ready
rm -f "$ready"

docker-entrypoint.sh rabbitmq-server &
server=$!
trap 'kill -TERM "$server"; wait "$server"; exit $?' TERM INT

rabbitmqctl await_startup --timeout 120
for service in inventory orders payments; do
    variable="RABBITMQ_$(echo "$service" | tr '[:lower:]' '[:upper:]')_PASSWORD"
    password=$(printenv "$variable" || true)
    if [ -z "$password" ]; then
        echo "$variable is not set: refusing to create the $service broker user" >&2
        kill -TERM "$server"
        exit 1
    fi
    if rabbitmqctl -q list_users | cut -f1 | grep -qx "$service"; then
        printf '%s' "$password" | rabbitmqctl change_password "$service"
    else
        printf '%s' "$password" | rabbitmqctl add_user "$service"
    fi
done
rabbitmqctl import_definitions /etc/rabbitmq/commerce-definitions.json
touch "$ready"
wait "$server"
