#!/usr/bin/env bash
# Installs libtorch for the `tch` crate (the trainer's), through PyTorch's PyPI wheel, into a
# virtual environment cached outside the clone:
# ${FLYWHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flywheel}/torch-VERSION.
# tch 0.26 needs libtorch 2.13.0 exactly. The wheel is large (about 4.7 GB with the CUDA
# libraries libtorch_cpu itself links; CUDA is used where a GPU is, the CPU otherwise).
# Idempotent. Prints the environment's directory on stdout; progress goes to stderr.
# scripts/with-libtorch.sh sets up a command to build and run against it.
set -euo pipefail

TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
CACHE="${FLYWHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flywheel}"
ROOT="$CACHE/torch-$TORCH_VERSION"
PY="$ROOT/bin/python"

check() {
  "$1" -c "import torch, sys; sys.exit(0 if torch.__version__.split('+')[0] == '$TORCH_VERSION' else 1)" \
    2>/dev/null
}

if [ -x "$PY" ] && check "$PY"; then
  echo "$ROOT"
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
mkdir -p "$CACHE"
free_kb="$(df -Pk "$CACHE" | awk 'NR == 2 { print $4 }')"
if [ "${free_kb:-0}" -lt $((7 * 1024 * 1024)) ]; then
  echo "installing torch $TORCH_VERSION needs about 7 GB free under $CACHE; $((free_kb / 1024)) MB are" >&2
  exit 1
fi
echo "installing torch $TORCH_VERSION (libtorch for tch) into $ROOT; a download of about 4.7 GB" >&2
rm -rf "$ROOT.partial"
"$python" -m venv "$ROOT.partial" >&2
"$ROOT.partial/bin/python" -m pip install --quiet --disable-pip-version-check --no-cache-dir \
  "torch==$TORCH_VERSION" >&2
rm -rf "$ROOT"
mv "$ROOT.partial" "$ROOT"
# (only `python -m ...` and the library directory are used from it, so the move is harmless)
check "$PY" || { echo "torch $TORCH_VERSION did not import from $ROOT" >&2; exit 1; }
echo "$ROOT"
