#!/usr/bin/env bash
# Build a MIQD database as a Slurm job array: one array task per shard, then one finalize job.
#   tools/slurm_build_miqd.sh CONFIG OUT NUM_SHARDS [PARTITION]
# e.g. tools/slurm_build_miqd.sh configs/build/my_cls.py data/my_miqd 32 cpu
# Each task runs `tools/build_miqd.py CONFIG --out OUT --num-shards NUM_SHARDS --shard-index
# $SLURM_ARRAY_TASK_ID --workers $SLURM_CPUS_PER_TASK` into the shared folder OUT (resumable: a
# requeued or rerun task skips its finished sources); the finalize job (split CSVs + manifest
# from every shard's sources) starts when all tasks succeeded (afterok). Shards + finalize give
# the same bytes as one build. Environment: CPUS_PER_TASK (16), TIME (24:00:00), SBATCH_ARGS
# (extra sbatch options, e.g. --gres=gpu:1 for GPU labelling machines).
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 CONFIG OUT NUM_SHARDS [PARTITION]" >&2; exit 2; }
CONFIG=$1 OUT=$2 SHARDS=$3
PARTITION=${4:+--partition=$4}
CPUS_PER_TASK=${CPUS_PER_TASK:-16}
TIME=${TIME:-24:00:00}
SBATCH_ARGS=${SBATCH_ARGS:-""}
cd "$(dirname "$0")/.."
mkdir -p "$OUT/slurm_logs"
# shellcheck disable=SC2086  # PARTITION / SBATCH_ARGS hold options or nothing
ARRAY=$(sbatch --parsable $PARTITION $SBATCH_ARGS --job-name=miqd-build --array=0-$((SHARDS - 1)) \
    --cpus-per-task="$CPUS_PER_TASK" --time="$TIME" --output="$OUT/slurm_logs/shard_%a.log" \
    --wrap="python tools/build_miqd.py '$CONFIG' --out '$OUT' --num-shards $SHARDS \
--shard-index \$SLURM_ARRAY_TASK_ID --workers \$SLURM_CPUS_PER_TASK --no-progress")
# shellcheck disable=SC2086
sbatch --parsable $PARTITION --job-name=miqd-finalize --dependency=afterok:"${ARRAY%%;*}" \
    --cpus-per-task=2 --time=01:00:00 --output="$OUT/slurm_logs/finalize.log" \
    --wrap="python tools/build_miqd.py '$CONFIG' --out '$OUT' --finalize"
echo "submitted array job ${ARRAY%%;*} ($SHARDS shards) and its finalize job; logs in $OUT/slurm_logs/"
