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
