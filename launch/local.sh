#!/usr/bin/env bash
# Run a multi-process training job on this machine, on fake CPU devices.
#
# Usage: launch/local.sh NUM_PROCESSES DEVICES_PER_PROCESS -- ARGS...
#
#   Starts NUM_PROCESSES copies of `python -m ienet_jax.main ARGS` with
#   --coordinator_address=127.0.0.1:PORT --num_processes=N --process_id=I appended, each
#   with JAX_PLATFORMS=cpu and XLA_FLAGS=--xla_force_host_platform_device_count=DEVICES_PER_PROCESS
#   in its environment (so the job has NUM_PROCESSES x DEVICES_PER_PROCESS devices).
#   Example:
#     launch/local.sh 2 2 -- --config=configs/quickstart.py:tscan --workdir=runs/mp
#
# Environment (optional):
#   PYTHON    interpreter (default: .venv/bin/python of this repository, else python3)
#   LOG_DIR   per-process logs LOG_DIR/process_I.log (default: a new temporary folder)
#   PORT      coordinator port (default: a free one)
#   KILL_GRACE  seconds between SIGTERM and SIGKILL for the other processes (default 5)
#
# Process 0's output is also copied to stderr. Exits 0 if every process exits 0; 75 if
# they were interrupted (SIGTERM/Ctrl-C: checkpointed, resumable; the others are awaited);
# as soon as one fails otherwise, the others are stopped and the script exits with the
# failed process's status (the first failure).
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; exit 2; }

[[ $# -ge 3 && "$3" == "--" ]] || usage
NUM=$1
DEVICES=$2
shift 3
[[ "$NUM" =~ ^[1-9][0-9]*$ && "$DEVICES" =~ ^[1-9][0-9]*$ ]] || usage

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$REPO/.venv/bin/python" ]]; then PYTHON="$REPO/.venv/bin/python"; else PYTHON=python3; fi
fi
LOG_DIR=${LOG_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/ienet-local.XXXXXX")}
mkdir -p "$LOG_DIR"
PORT=${PORT:-$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
KILL_GRACE=${KILL_GRACE:-5}
echo "local.sh: $NUM processes x $DEVICES CPU devices, coordinator 127.0.0.1:$PORT, logs in $LOG_DIR" >&2

declare -a PIDS=()
stop_all() {  # SIGTERM the processes still running, SIGKILL them after KILL_GRACE seconds
  local pid alive=()
  for pid in "${PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid" 2>/dev/null || true; alive+=("$pid"); fi
  done
  [[ ${#alive[@]} -eq 0 ]] && return 0
  local end=$((SECONDS + KILL_GRACE))
  while ((SECONDS < end)); do
    local any=0
    for pid in "${alive[@]}"; do kill -0 "$pid" 2>/dev/null && any=1; done
    ((any)) || return 0
    sleep 0.2
  done
  for pid in "${alive[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
}
trap 'stop_all; exit 130' INT TERM

for ((i = 0; i < NUM; i++)); do
  env JAX_PLATFORMS=cpu XLA_FLAGS="${XLA_FLAGS:+$XLA_FLAGS }--xla_force_host_platform_device_count=$DEVICES" \
    "$PYTHON" -m ienet_jax.main "$@" --coordinator_address="127.0.0.1:$PORT" \
    --num_processes="$NUM" --process_id="$i" >"$LOG_DIR/process_$i.log" 2>&1 &
  PIDS+=($!)
done
tail -n +1 -f "$LOG_DIR/process_0.log" >&2 &  # process 0 on the console
TAIL=$!
trap 'sleep 0.3; kill "$TAIL" 2>/dev/null || true' EXIT

# Poll rather than `wait -n`: works with any bash >= 4 and reports which process ended.
status=0
declare -A RUNNING=()
for ((i = 0; i < NUM; i++)); do RUNNING[$i]=${PIDS[$i]}; done
while ((${#RUNNING[@]} > 0)); do
  for i in "${!RUNNING[@]}"; do
    pid=${RUNNING[$i]}
    kill -0 "$pid" 2>/dev/null && continue
    rc=0
    wait "$pid" || rc=$?
    unset "RUNNING[$i]"
    if ((rc == 75)); then  # interrupted, resumable: every process stops at the same step
      status=75
      continue
    fi
    if ((rc != 0)); then
      echo "local.sh: process $i failed (exit $rc); stopping the others. End of $LOG_DIR/process_$i.log:" >&2
      tail -n 20 "$LOG_DIR/process_$i.log" >&2 || true
      status=$rc
      stop_all
      wait "${PIDS[@]}" 2>/dev/null || true
      break 2
    fi
  done
  sleep 0.2
done
((status == 0)) && echo "local.sh: all $NUM processes finished" >&2
exit "$status"
