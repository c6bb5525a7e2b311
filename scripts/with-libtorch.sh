#!/usr/bin/env bash
# Runs a command with libtorch set up for the `tch` crate (installed first, idempotently, by
# scripts/install-libtorch.sh): a build finds torch through that environment's python
# (LIBTORCH_USE_PYTORCH=1), and at run time the dynamic linker finds libtorch's libraries.
# Also exports FLYWHEEL_LIBTORCH, torch's directory. Usage: scripts/with-libtorch.sh CMD...
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$("$here/install-libtorch.sh")"
torch_dir="$("$root/bin/python" -W ignore -c 'import os, torch; print(os.path.dirname(torch.__file__))')"
export LIBTORCH_USE_PYTORCH=1
export PATH="$root/bin:$PATH"
export LD_LIBRARY_PATH="$torch_dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export FLYWHEEL_LIBTORCH="$torch_dir"
exec "$@"
