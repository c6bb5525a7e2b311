#!/usr/bin/env bash
# The test command (README, CI): formatting, lints, then the whole test suite, with the
# Kafka backend's tests against a real Kafka-API broker (tansu) that this script installs
# (cached outside the clone) and starts, the restricted-data sources' tests against a
# throwaway PostgreSQL cluster (scripts/install-postgres.sh, scripts/with-postgres.sh),
# /metrics checked by promtool (installed from Debian's packages), and training-set shards
# read by Python's webdataset package (in a cached virtual environment), and the trainer
# built and run against libtorch (scripts/install-libtorch.sh, scripts/with-libtorch.sh), and
# the deployment files of deploy/ checked (scripts/check-deploy.sh: docker-compose from
# Debian's packages, kubernetes-validate and hadolint from PyPI, promtool).
# Nothing else needs to be installed by hand.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

# the whole run builds against libtorch (installed first, once)
if [ -z "${FLYWHEEL_LIBTORCH:-}" ]; then
  printf '\n==> %s\n' "installing libtorch (once; cached outside the clone)" >&2
  exec scripts/with-libtorch.sh "$0" "$@"
fi

step() { printf '\n==> %s\n' "$*" >&2; }

step "installing what the tests need"
scripts/install-tansu.sh >/dev/null
scripts/install-promtool.sh >/dev/null
scripts/install-postgres.sh >/dev/null
FLYWHEEL_TEST_PYTHON="$(scripts/install-webdataset.sh)"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "deploy files"
scripts/check-deploy.sh

step "tests (the Kafka backend's against tansu, the sources' against PostgreSQL)"
export FLYWHEEL_REQUIRE_KAFKA=1 FLYWHEEL_REQUIRE_PROMTOOL=1 FLYWHEEL_REQUIRE_POSTGRES=1
export FLYWHEEL_TEST_PYTHON FLYWHEEL_REQUIRE_WEBDATASET=1
if cargo nextest --version >/dev/null 2>&1; then
  scripts/with-postgres.sh scripts/with-kafka.sh cargo nextest run --workspace --locked --profile ci
else
  echo "cargo-nextest not found; running cargo test" >&2
  scripts/with-postgres.sh scripts/with-kafka.sh cargo test --workspace --locked
fi
