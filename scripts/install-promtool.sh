#!/usr/bin/env bash
# Installs promtool (from Debian's `prometheus` package), which the tests use to validate
# the /metrics text. Idempotent; needs root (or sudo) for apt. Prints promtool's path.
set -euo pipefail
if command -v promtool >/dev/null 2>&1; then
  command -v promtool
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "promtool is missing and installing it needs root: apt-get install prometheus" >&2
    exit 1
  fi
fi
echo "installing promtool (Debian package prometheus)" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >&2
# the package's service is not started: only its promtool binary is used
$sudo apt-get install -y -qq --no-install-recommends prometheus >&2
command -v promtool
