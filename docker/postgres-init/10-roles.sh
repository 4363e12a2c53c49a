#!/usr/bin/env bash
# The register's two roles, made by the postgres image's entrypoint as the superuser the first
# time the container starts. Init scripts run only on an empty data volume: on an existing one
# nothing here runs again (drop the volume, or run the SQL below by hand).
#
# register_owner owns the database and runs the migrations (DATABASE_MIGRATION_URL);
# register_app is the role the service runs as (DATABASE_URL): it may log in and connect, and the
# migrations grant it the rest (src/db/roles.ts). PUBLIC may not even connect.
set -eo pipefail

: "${POSTGRES_OWNER_PASSWORD:?set POSTGRES_OWNER_PASSWORD (the password of register_owner, the migrations role)}"
: "${POSTGRES_APP_PASSWORD:?set POSTGRES_APP_PASSWORD (the password of register_app, the service role)}"

# psql quotes the passwords itself (:'…'), so any character is safe here.
psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
  -v owner_password="$POSTGRES_OWNER_PASSWORD" -v app_password="$POSTGRES_APP_PASSWORD" <<'SQL'
CREATE ROLE register_owner LOGIN PASSWORD :'owner_password';
CREATE ROLE register_app LOGIN PASSWORD :'app_password';
CREATE DATABASE register OWNER register_owner;
REVOKE ALL ON DATABASE register FROM PUBLIC;
GRANT CONNECT ON DATABASE register TO register_owner, register_app;
SQL
