#!/bin/sh
# Make the cluster on first start (POSTGRES_PASSWORD required), then run PostgreSQL in the
# foreground. The socket and the password file live in /tmp: the root filesystem may be read-only.
set -eu
bin=/usr/lib/postgresql/15/bin
data=${PGDATA:?PGDATA is not set}
user=${POSTGRES_USER:-arbx}
db=${POSTGRES_DB:-arbx}
if [ ! -s "$data/PG_VERSION" ]; then
    if [ -z "${POSTGRES_PASSWORD:-}" ]; then
        echo "arbx-postgres: error: set POSTGRES_PASSWORD for the first start" >&2
        exit 2
    fi
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    "$bin/initdb" -D "$data" -U "$user" --pwfile="$pwfile" --auth-local=trust \
        --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >>"$data/pg_hba.conf"
    if [ "$db" != postgres ]; then
        echo "CREATE DATABASE \"$db\" OWNER \"$user\"" |
            "$bin/postgres" --single -D "$data" -j postgres >/dev/null
    fi
    echo "arbx-postgres: made the cluster in $data (database $db, user $user)"
fi
exec "$bin/postgres" -D "$data" -c listen_addresses='*' -c unix_socket_directories=/tmp "$@"
