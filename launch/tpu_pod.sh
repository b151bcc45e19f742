#!/usr/bin/env bash
# Run the trainer on every worker of a Cloud TPU VM pod slice (one process per worker).
#
# Usage: launch/tpu_pod.sh TPU_NAME ZONE -- ARGS...
#
#   Runs `python -m ienet_jax.main --distributed ARGS` on all workers at once through
#   `gcloud compute tpus tpu-vm ssh TPU_NAME --zone=ZONE --worker=all`; JAX detects the
#   coordinator, process count and process id from the TPU VM itself. Example:
#     launch/tpu_pod.sh my-v4-32 us-central2-b -- --config=configs/ienet.py:reference \
#         --workdir=/mnt/shared/runs/ref --config.data.dir=/mnt/shared/clips
#
#   The repository (with its .venv) must already sit at REPO_DIR on every worker, and
#   --workdir and data.dir must be on storage every worker sees (NFS, Filestore, gcsfuse):
#   checkpoints are written collectively by all workers.
#
# Environment (optional):
#   PROJECT   gcloud project (default: gcloud's configured one)
#   REPO_DIR  repository path on the workers (default: ~/ienet-jax)
#   PYTHON    interpreter on the workers (default: REPO_DIR/.venv/bin/python)
#   LOG_DIR   log folder on each worker (default: REPO_DIR/logs); each worker writes
#             LOG_DIR/worker-<hostname>.log, and this script keeps the combined output
#             in ./tpu-<TPU_NAME>-<date>.log
#
# Exits with gcloud's status: non-zero if any worker's command failed.
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; exit 2; }

[[ $# -ge 3 && "$3" == "--" ]] || usage
TPU_NAME=$1
ZONE=$2
shift 3

REPO_DIR=${REPO_DIR:-'~/ienet-jax'}  # expanded on the worker
PYTHON=${PYTHON:-"$REPO_DIR/.venv/bin/python"}
LOG_DIR=${LOG_DIR:-"$REPO_DIR/logs"}

# The remote command, every user argument quoted for the remote shell.
ARGS=$(printf ' %q' "$@")
REMOTE="cd $REPO_DIR && mkdir -p $LOG_DIR && $PYTHON -m ienet_jax.main --distributed$ARGS \
2>&1 | tee $LOG_DIR/worker-\$(hostname).log; exit \${PIPESTATUS[0]}"

GCLOUD=(gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" --worker=all)
[[ -n "${PROJECT:-}" ]] && GCLOUD+=(--project="$PROJECT")
LOCAL_LOG="tpu-$TPU_NAME-$(date +%Y%m%d-%H%M%S).log"
echo "tpu_pod.sh: on all workers of $TPU_NAME: $REMOTE" >&2
echo "tpu_pod.sh: combined output in $LOCAL_LOG" >&2
set +e
"${GCLOUD[@]}" --command="bash -c $(printf '%q' "$REMOTE")" 2>&1 | tee "$LOCAL_LOG"
status=${PIPESTATUS[0]}
set -e
exit "$status"
