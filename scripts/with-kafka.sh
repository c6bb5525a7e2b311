#!/usr/bin/env bash
# Runs a command with a Kafka-API broker (tansu, in memory) on a free loopback port, and
# stops the broker afterwards. The command sees the broker's address in
# FLYWHEEL_TEST_KAFKA and FLYWHEEL_KAFKA (host:port). Installs tansu first if needed.
#   scripts/with-kafka.sh cargo nextest run -p flywheel-topics
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tansu="$("$root/scripts/install-tansu.sh")"

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
run_dir="$(mktemp -d -t flywheel-kafka.XXXXXX)"
"$tansu" broker \
  --listener-url "tcp://127.0.0.1:$port" \
  --advertised-listener-url "tcp://127.0.0.1:$port" \
  --storage-engine memory://tansu/ >"$run_dir/tansu.log" 2>&1 &
broker=$!
cleanup() {
  kill "$broker" 2>/dev/null || true
  wait "$broker" 2>/dev/null || true
  rm -rf "$run_dir"
}
trap cleanup EXIT

for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  if ! kill -0 "$broker" 2>/dev/null; then
    echo "tansu exited at start-up:" >&2
    cat "$run_dir/tansu.log" >&2
    exit 1
  fi
  sleep 0.1
done
echo "kafka broker (tansu) on 127.0.0.1:$port" >&2
export FLYWHEEL_TEST_KAFKA="127.0.0.1:$port" FLYWHEEL_KAFKA="127.0.0.1:$port"
"$@"
