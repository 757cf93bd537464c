#!/usr/bin/env bash
# Usage: tools/dist_train.sh CONFIG NPROC [train.py args...]     (NPROC processes on this machine)
# Multi-node: run it once per node with the same NNODES, MASTER_ADDR (node 0's address reachable
# from every node) and MASTER_PORT, and NODE_RANK = 0 .. NNODES-1; each node starts NPROC ranks
# (global batch = NNODES x NPROC x the config's batch_size). E.g. two nodes with 8 GPUs each:
#   node 0: NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 tools/dist_train.sh configs/ra_miqa_cls.py 8
#   node 1: NNODES=2 NODE_RANK=1 MASTER_ADDR=10.0.0.1 tools/dist_train.sh configs/ra_miqa_cls.py 8
# tests/test_multinode.py runs two such "nodes" on one machine (gloo on CPU).
set -euo pipefail
CONFIG=$1
NPROC=$2
shift 2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-29500}
# On CPU-only machines keep one OpenMP thread per process (2 cores, 2 ranks).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
cd "$(dirname "$0")/.."
exec python -m torch.distributed.run \
    --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$NPROC" --master_port="$MASTER_PORT" \
    tools/train.py "$CONFIG" --launcher pytorch "$@"
