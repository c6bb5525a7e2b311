#!/usr/bin/env bash
# Installs the `webdataset` Python package (PyPI) into a virtual environment, with which
# the tests check that PyTorch users can read flywheel's training-set shards.
# Idempotent, cached outside the clone: ${FLYWHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flywheel}.
# Prints the path of the environment's python on stdout; progress goes to stderr.
set -euo pipefail

WEBDATASET_VERSION="${WEBDATASET_VERSION:-1.0.2}"
CACHE="${FLYWHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flywheel}"
ROOT="$CACHE/webdataset-$WEBDATASET_VERSION"
PY="$ROOT/bin/python"

if [ -x "$PY" ] && "$PY" -c "import webdataset" 2>/dev/null; then
  echo "$PY"
  exit 0
fi

python=""
for candidate in python3 python; do
  if command -v "$candidate" >/dev/null 2>&1; then python="$candidate"; break; fi
done
if [ -z "$python" ]; then
  echo "python3 is missing: install it (e.g. apt-get install python3 python3-venv)" >&2
  exit 1
fi
echo "installing webdataset $WEBDATASET_VERSION into $ROOT" >&2
rm -rf "$ROOT.partial"
"$python" -m venv "$ROOT.partial" >&2
"$ROOT.partial/bin/python" -m pip install --quiet --disable-pip-version-check \
  "webdataset==$WEBDATASET_VERSION" >&2
rm -rf "$ROOT"
mv "$ROOT.partial" "$ROOT"
# (only `python -m ...` is used from it, so the move does not matter to its scripts)
"$PY" -c "import webdataset" >&2
echo "$PY"
