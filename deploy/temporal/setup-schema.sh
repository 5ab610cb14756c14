#!/bin/sh
# Create or upgrade Temporal's schemas (default store and visibility) in the databases the
# PostgreSQL init script made for the `temporal` role. Idempotent; any failure fails the job and
# nothing that depends on it starts.
set -eu
: "${SQL_PASSWORD:?}"
SCHEMA=/etc/temporal/schema/postgresql/v12
for db in temporal temporal_visibility; do
  dir=temporal
  [ "$db" = temporal_visibility ] && dir=visibility
  temporal-sql-tool --plugin postgres12 --ep postgresql -p 5432 -u temporal --db "$db" \
    setup-schema -v 0.0
  temporal-sql-tool --plugin postgres12 --ep postgresql -p 5432 -u temporal --db "$db" \
    update-schema -d "$SCHEMA/$dir/versioned"
done
echo "temporal schemas are current"
