#!/usr/bin/env bash
# Check a new GPU box in one command, from the repository root (bench/README.md, "A GPU box"):
#   bash bench/gpu_check.sh --prepare [PATH]   copy the notebook's code (default ../shared/baseline/
#                                              seed_reference.py) to bench/.baseline/, which git ignores
#   bash bench/gpu_check.sh --out DIR          the check: DIR/gpu-<gpu name>.json and .txt, rewritten
#                                              after each section
#   bash bench/gpu_check.sh --device cpu --quick --out DIR   a dry run on a CPU
# Other flags go to bench/gpu_check.py (--threads N, --only SECTION,..., --baseline PATH).
# Needs torch (rich, matplotlib and seaborn for the headless runs); not textual, not an install of
# this project. About 5 minutes on one H100; the time limit below (under a device machine's 10
# minutes a command) stops it, and the JSON keeps every section that finished.
set -uo pipefail
cd "$(dirname "$0")/.."
LIMIT_S="${GPU_CHECK_LIMIT_S:-540}"  # seconds; the environment may lower it to try the limit

if [[ "${1:-}" == "--prepare" ]]; then
    src="${2:-../shared/baseline/seed_reference.py}"
    if [[ ! -f "$src" ]]; then
        echo "gpu_check: no notebook baseline at $src (give its path: bash bench/gpu_check.sh --prepare PATH)" >&2
        exit 2
    fi
    mkdir -p bench/.baseline
    tmp="$(mktemp bench/.baseline/.seed_reference.XXXXXX)"
    cp "$src" "$tmp" && chmod 644 "$tmp" && mv "$tmp" bench/.baseline/seed_reference.py || { rm -f "$tmp"; exit 1; }
    echo "gpu_check: copied $src to bench/.baseline/seed_reference.py; carry bench/.baseline to the GPU machine"
    exit 0
fi

export MPLBACKEND=Agg PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv 2>/dev/null || echo "nvidia-smi: not found"
# SIGTERM at the limit (the check records it and writes its files), SIGKILL 20 s later
exec timeout -k 20 "$LIMIT_S" python3 bench/gpu_check.py "$@"
