-- Prepares one commerce database: a schema and a login role per service, each role able to
-- use only its own schema. Run inside the target database as a superuser; idempotent.
-- Docker Compose runs it from /docker-entrypoint-initdb.d; `make db` and the test suite run
-- it through infra/postgres/prepare.py.
--
-- Roles are cluster-wide; the passwords below are development placeholders (local Postgres
-- trusts 127.0.0.1, and services refuse placeholder passwords outside development).
DO $$
DECLARE
    service text;
BEGIN
    FOREACH service IN ARRAY ARRAY['gateway', 'inventory', 'orders', 'payments'] LOOP
        BEGIN
            EXECUTE format('CREATE ROLE %I LOGIN PASSWORD %L', service, 'change-me');
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- another database on this cluster created it already
        END;
        EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I AUTHORIZATION %I', service, service);
        EXECUTE format('REVOKE ALL ON SCHEMA %I FROM PUBLIC', service);
        EXECUTE format('ALTER ROLE %I IN DATABASE %I SET search_path = %I',
                       service, current_database(), service);
    END LOOP;
    EXECUTE format('REVOKE CREATE, TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
END
$$;

REVOKE ALL ON SCHEMA public FROM PUBLIC;
