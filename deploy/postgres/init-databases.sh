#!/bin/sh
# First start of the PostgreSQL container only (docker-entrypoint-initdb.d): one role and its own
# databases for Temporal, another for the ledger. Neither is a superuser; neither can read the
# other's data. Passwords come from the environment and are required (compose refuses to start
# without them). Fails loudly: any error stops the container's initialisation.
set -eu
: "${TEMPORAL_DB_PASSWORD:?}"
: "${LEDGER_DB_PASSWORD:?}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v temporal_pw="$TEMPORAL_DB_PASSWORD" -v ledger_pw="$LEDGER_DB_PASSWORD" <<'SQL'
CREATE ROLE temporal LOGIN PASSWORD :'temporal_pw';
CREATE DATABASE temporal OWNER temporal;
CREATE DATABASE temporal_visibility OWNER temporal;
CREATE ROLE studio LOGIN PASSWORD :'ledger_pw';
CREATE DATABASE studio_ledger OWNER studio;
REVOKE ALL ON DATABASE temporal, temporal_visibility FROM PUBLIC;
REVOKE ALL ON DATABASE studio_ledger FROM PUBLIC;
SQL
