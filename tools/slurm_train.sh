#!/usr/bin/env bash
# Train on a Slurm cluster with mmengine's slurm launcher (one task per GPU, as mmpretrain ships it):
#   GPUS=16 GPUS_PER_NODE=8 tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]
# e.g. the paper's 2 GPUs x 128:   GPUS=2 GPUS_PER_NODE=2 tools/slurm_train.sh gpu ra_miqa configs/ra_miqa_cls.py work_dirs/ra_miqa_cls
# mmengine reads SLURM_PROCID / SLURM_NTASKS / SLURM_NODELIST (master: the first node, port
# MASTER_PORT or 29500). Environment: GPUS (tasks in all), GPUS_PER_NODE, CPUS_PER_TASK (loader
# workers + 1; the configs use 8 workers per GPU), SRUN_ARGS (extra srun options, e.g. --quotatype).
set -euo pipefail
[ $# -ge 4 ] || { echo "usage: [GPUS=N GPUS_PER_NODE=M] $0 PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]" >&2; exit 2; }
PARTITION=$1 JOB_NAME=$2 CONFIG=$3 WORK_DIR=$4
shift 4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-$(( GPUS < 8 ? GPUS : 8 ))}
CPUS_PER_TASK=${CPUS_PER_TASK:-9}
SRUN_ARGS=${SRUN_ARGS:-""}
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# shellcheck disable=SC2086  # SRUN_ARGS holds several options
exec srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    --gres=gpu:"$GPUS_PER_NODE" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    $SRUN_ARGS \
    python -u tools/train.py "$CONFIG" --work-dir "$WORK_DIR" --launcher slurm "$@"
