#!/usr/bin/env bash
# Reproduces models/student_sim.pt, the student the main job (./dev.sh demo) runs when no other
# checkpoint is given: synthetic sessions from the project's own simulator, then training on CPU.
#
#   tools/train_shipped_student.sh [WORKDIR]      (about 50 minutes on 2 CPU cores)
#
# The same seeds give the same bags; training is deterministic under its seed on one CPU thread.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=${1:-$root/runs/shipped_student}
mkdir -p "$work"
run() { "$root/dev.sh" run "$@"; }
run radar-pose simulate --out "$work/sim_train" --subjects 24 --minutes 3 --seed 101 --overwrite
run radar-pose simulate --out "$work/sim_val" --subjects 2 --minutes 1 --seed 202 --overwrite
OMP_NUM_THREADS=1 run radar-pose train "$work/sim_train" --val-bags "$work/sim_val" --out-dir "$work/run" \
    --epochs 10 --batch-size 2 --lr 2e-3 --warmup-steps 500 --ema 0.999 --augment-appear 0.2 \
    --seed 0 --no-progress-bar
cp "$work/run/student.pt" "$root/models/student_sim.pt"
run radar-pose eval "$root/models/student_sim.pt" "$work/sim_val" --label-topic /radar_pose/ground_truth/skeleton
