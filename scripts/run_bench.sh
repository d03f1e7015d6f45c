#!/usr/bin/env bash
# Print the speed figures: CETT extraction against a plain forward pass, and the overhead of
# each steering method against plain generation (default model, this machine's CPU).
set -eo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh
. .venv/bin/activate
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} HF_HUB_DISABLE_PROGRESS_BARS=1 TOKENIZERS_PARALLELISM=false
if [ -z "${HNEURONS_DATA_DIR:-}" ] && [ -d ../shared/data ]; then
  export HNEURONS_DATA_DIR=$(cd ../shared/data && pwd)
fi
for f in bench/bench_*.py; do
  echo "== $f"
  python "$f"
done
# On a machine with a CUDA GPU: the CUDA paths against the CPU, and their speed at 7B/8B shapes
if python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "== bench/gpu_check.py"
  python bench/gpu_check.py --shape smollm2-135m,llama-7b,llama3-8b --out results/bench
fi
