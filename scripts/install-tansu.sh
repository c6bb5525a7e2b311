#!/usr/bin/env bash
# Installs tansu (a Kafka-API-compatible broker) for the Kafka backend's tests and benchmarks.
# Idempotent, cached outside the clone: ${FLYWHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flywheel}.
# Prints the path of the tansu binary on stdout; progress goes to stderr.
set -euo pipefail

TANSU_VERSION="${TANSU_VERSION:-0.6.0}"
CACHE="${FLYWHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flywheel}"
ROOT="$CACHE/tansu-$TANSU_VERSION"
BIN="$ROOT/bin/tansu"

if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi

mkdir -p "$ROOT"
echo "installing tansu $TANSU_VERSION into $ROOT (a first build takes about 15 minutes on 2 cores)" >&2
# A cached target directory makes a re-install after an interrupted build incremental.
CARGO_TARGET_DIR="$CACHE/tansu-target" \
  cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore \
  --root "$ROOT.partial" >&2 \
  || CARGO_TARGET_DIR="$CACHE/tansu-target" \
    cargo install tansu --version "$TANSU_VERSION" --features dynostore \
    --root "$ROOT.partial" >&2
mkdir -p "$ROOT/bin"
mv "$ROOT.partial/bin/tansu" "$BIN"
rm -rf "$ROOT.partial"
echo "$BIN"
