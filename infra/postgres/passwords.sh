#!/bin/sh
# Docker Compose only, after init.sql: give each service's role the password from its
# <SERVICE>_DB_PASSWORD variable (init.sql's are development placeholders). psql quotes the
# values itself (:'name'), so a password needs no escaping.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v gateway="$GATEWAY_DB_PASSWORD" -v inventory="$INVENTORY_DB_PASSWORD" \
    -v orders="$ORDERS_DB_PASSWORD" -v payments="$PAYMENTS_DB_PASSWORD" <<'SQL'
ALTER ROLE gateway PASSWORD :'gateway';
ALTER ROLE inventory PASSWORD :'inventory';
ALTER ROLE orders PASSWORD :'orders';
ALTER ROLE payments PASSWORD :'payments';
SQL
