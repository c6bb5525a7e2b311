#!/usr/bin/env bash
# The main job (README): builds flywheel against libtorch (installed first, once, by
# scripts/with-libtorch.sh) and runs `flywheel demo` on the embedded default (no servers
# to install). Arguments are passed to `flywheel demo`, e.g. --json.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/with-libtorch.sh cargo build --release --locked -p flywheel --bin flywheel >&2
exec scripts/with-libtorch.sh "$root/target/release/flywheel" demo "$@"
