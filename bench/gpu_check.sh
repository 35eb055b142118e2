#!/usr/bin/env bash
# Check a new GPU box in one command, from the repository root: bash bench/gpu_check.sh
# Needs torch with CUDA (rich, matplotlib and seaborn for the headless runs); not textual, not
# an install of this project. Writes bench/results/gpu-<gpu name>.json and .txt (a summary).
# Under 8 minutes on one H100/H200; the time limit below ends it whatever happens.
set -uo pipefail
cd "$(dirname "$0")/.."
export MPLBACKEND=Agg PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv 2>/dev/null || echo "nvidia-smi: not found"
exec timeout 480 python3 bench/gpu_check.py "$@"
