#!/usr/bin/env bash
# The main job (README): builds flywheel and runs `flywheel demo` on the embedded default
# (no servers to install). Arguments are passed to `flywheel demo`, e.g. --json.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
cargo build --release --locked -p flywheel --bin flywheel >&2
exec "$root/target/release/flywheel" demo "$@"
