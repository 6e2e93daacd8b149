#!/bin/bash
# Eight Limen workers on one PostgreSQL study, as a SLURM job array.
#
# Create the study once first (it runs nothing):
#   limen run --sfd logreg_binary --test-mode -n 2000 --strategy tpe \
#       --storage "$LIMEN_STORAGE" --name sweep-1 --experiment-dir runs/sweep-1 --jobs 0
# then submit:  sbatch --export=ALL,LIMEN_STORAGE=postgresql+psycopg://limen@db/sweeps slurm_array.sh
#
# Every task runs the same command. A task that is preempted and requeued just runs it again:
# the study hands out rounds, counts them against its target and re-runs the round of a worker
# that died once its lease expires.
#SBATCH --job-name=limen-sweep-1
#SBATCH --array=0-7
#SBATCH --cpus-per-task=1
#SBATCH --time=04:00:00
#SBATCH --requeue
#SBATCH --output=limen-%A_%a.log
set -euo pipefail

: "${LIMEN_STORAGE:?set LIMEN_STORAGE to the PostgreSQL URL of the study}"

exec limen worker \
    --storage "$LIMEN_STORAGE" \
    --study sweep-1 \
    --experiment-dir "runs/sweep-1/worker-${SLURM_ARRAY_TASK_ID}" \
    --no-progress
