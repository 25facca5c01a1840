#!/usr/bin/env bash
# Property-based API testing of a live `sluice control` against docs/openapi.yaml with
# schemathesis (PyPI). Fails on any 5xx answer and on any answer that violates the documented
# response schema. Usage: scripts/schemathesis.sh [max-examples-per-operation]
#
# The venv lives in target/ so repeated runs do not reinstall; the server runs on a free
# loopback port with a throwaway data dir and table file, and is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
MAX_EXAMPLES=${1:-${SCHEMATHESIS_MAX_EXAMPLES:-40}}
VENV=$ROOT/target/schemathesis-venv

if [ ! -x "$VENV/bin/schemathesis" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check 'schemathesis>=4.3,<5'
fi

cargo build -q -p sluice --bin sluice

WORK=$(mktemp -d)
TABLE=/dev/shm/sluice-schemathesis-$$.table
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -f "$TABLE"
  rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
APP=stapp
cat > "$WORK/sluice.toml" <<TOML
[control]
listen = "127.0.0.1:$PORT"
data_dir = "$WORK/data"
region = "na"
log = "warn"

# Quotas off: a 429 is correct but would hide the rest of the run.
[control.rate_limits]
create = 0
delete = 0
query = 0
update = 0

[[control.credentials]]
id = "stcustomer"
secret = "stsecret"

[[apps]]
id = "$APP"
certificate = "0123456789abcdef0123456789abcdef"
domains = ["ingest.example.com"]

[table]
path = "$TABLE"
TOML

"$ROOT/target/debug/sluice" control --config "$WORK/sluice.toml" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
  if grep -q '^listening on' "$WORK/server.log"; then break; fi
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then cat "$WORK/server.log"; exit 1; fi
  sleep 0.1
done

# Pin the path parameters this server answers for, so generated requests reach the handlers
# instead of stopping at "wrong region" / "app not enabled".
"$VENV/bin/python" - "$ROOT/docs/openapi.yaml" "$WORK/openapi.yaml" "$APP" <<'PY'
import sys, yaml
src, dst, app = sys.argv[1:4]
d = yaml.safe_load(open(src))
p = d["components"]["parameters"]
p["region"]["schema"] = {"enum": ["na"]}
p["appId"]["schema"] = {"enum": [app]}
yaml.safe_dump(d, open(dst, "w"), sort_keys=False)
PY

# The coverage phase is left out: with schemathesis 4.32 on CPython 3.11.7 it dies inside
# hypothesis' lambda-source parser ("AST constructor recursion depth mismatch"), an internal
# error unrelated to the API. The fuzzing and stateful phases send invalid data too.
status=0
# Run from the work dir so schemathesis' example database does not land in the checkout.
cd "$WORK"
"$VENV/bin/schemathesis" run "$WORK/openapi.yaml" \
  --url "http://127.0.0.1:$PORT" \
  --auth stcustomer:stsecret \
  --checks not_a_server_error,response_schema_conformance,content_type_conformance \
  --max-examples "$MAX_EXAMPLES" \
  --seed 1 \
  --phases examples,fuzzing,stateful \
  --workers 2 \
  --no-color || status=$?
if [ "$status" -ne 0 ]; then
  echo "---- server log ----"
  tail -n 50 "$WORK/server.log"
fi
exit "$status"
