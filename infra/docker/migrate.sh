#!/bin/sh
# Apply every service's migrations (the compose "migrate" step; `make migrate` locally).
set -e
for dir in gateway services/inventory services/orders services/payments; do
    echo "migrating $dir"
    alembic -c "/app/$dir/alembic.ini" upgrade head
done
