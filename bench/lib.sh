# Helpers shared by the bench scripts (sourced, not run). Expects $root and $tandem to be set.

work="$(mktemp -d)"
# The bench scripts measure; they run the internal ports without certificates unless a script
# says otherwise (compare.sh runs a second cluster on certificates).
export TANDEM_INSECURE=true
# Extra `tandem status` flags for wait_view (e.g. an operator certificate).
status_flags=()
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# wait_port PORT: until something listens there (20 s at most).
wait_port() {
  for _ in $(seq 400); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
  echo "port $1 never opened" >&2; exit 1
}

# wait_view VS_ADDR PYTHON_CONDITION [SECONDS]: until group 0's status (`g`, a dict) satisfies
# the condition (SECONDS at most, default 30), e.g. 'g["acked"] and g["backups"]'.
wait_view() {
  for _ in $(seq $(( ${3:-30} * 20 ))); do
    "$tandem" status --viewserver "$1" "${status_flags[@]}" --json 2>/dev/null |
      python3 -c "import json,sys; g=json.load(sys.stdin)['groups'][0]; sys.exit(0 if ($2) else 1)" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "the view never satisfied: $2" >&2; exit 1
}
