#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL cluster on a free loopback port, and stops and
# removes the cluster afterwards (also when the command fails or is interrupted). The command
# sees FLYWHEEL_TEST_POSTGRES=postgres://flywheel:PASSWORD@127.0.0.1:PORT/flywheel: a role
# `flywheel` with a random password, owner of the database `flywheel`. Installs the server
# first if needed (scripts/install-postgres.sh). Composes with scripts/with-kafka.sh:
#   scripts/with-postgres.sh scripts/with-kafka.sh cargo nextest run --workspace
# initdb refuses to run as root: as root, the cluster runs as the user `postgres` (or
# `nobody`) in a temporary directory that user owns.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ "$#" -eq 0 ]; then
  echo "usage: $0 COMMAND [ARG...]" >&2
  exit 2
fi
bin="$("$root/scripts/install-postgres.sh")"

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
password="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"

as_owner=()
if [ "$(id -u)" -eq 0 ]; then
  owner=postgres
  id -u "$owner" >/dev/null 2>&1 || owner=nobody
  # under /tmp, which every user can reach (TMPDIR may be a private directory of root's)
  run_dir="$(mktemp -d /tmp/flywheel-postgres.XXXXXX)"
  chown "$owner" "$run_dir"
  as_owner=(runuser -u "$owner" --)
else
  run_dir="$(mktemp -d -t flywheel-postgres.XXXXXX)"
fi
data="$run_dir/data"
# Runs a server binary as the cluster's owner, from a directory it may enter.
as_cluster_owner() { (cd "$run_dir" && ${as_owner[@]+"${as_owner[@]}"} "$@"); }

cleanup() {
  if [ -f "$data/postmaster.pid" ]; then
    as_cluster_owner "$bin/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$run_dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
  echo "$1:" >&2
  cat "$2" >&2 || true
  exit 1
}

as_cluster_owner "$bin/initdb" -D "$data" -U postgres -E UTF8 --locale=C \
  --auth-local=trust --auth-host=scram-sha-256 --no-sync \
  >"$run_dir/initdb.log" 2>&1 || fail "initdb failed" "$run_dir/initdb.log"
cat >>"$data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$run_dir'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 50
EOF
# The role and its database, in single-user mode (no client binary needed), before start.
as_cluster_owner "$bin/postgres" --single -D "$data" postgres >"$run_dir/setup.log" 2>&1 <<SQL \
  || fail "creating the role flywheel failed" "$run_dir/setup.log"
CREATE ROLE flywheel LOGIN PASSWORD '$password';
CREATE DATABASE flywheel OWNER flywheel;
SQL
if grep -q -E '^(ERROR|FATAL)' "$run_dir/setup.log"; then
  fail "creating the role flywheel failed" "$run_dir/setup.log"
fi
as_cluster_owner "$bin/pg_ctl" -D "$data" -l "$run_dir/postgres.log" -w -t 60 start >/dev/null \
  || fail "postgres did not start" "$run_dir/postgres.log"

echo "postgresql ($("$bin/postgres" --version)) on 127.0.0.1:$port" >&2
export FLYWHEEL_TEST_POSTGRES="postgres://flywheel:$password@127.0.0.1:$port/flywheel"
"$@"
