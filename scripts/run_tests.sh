#!/usr/bin/env bash
# Set up the environment, then run every test (unit tests on tiny models, the slow tests on
# the real embedded model, and the smoke build of the whole book).
set -eo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh
scripts/fetch_mathjax.sh
. .venv/bin/activate
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 TOKENIZERS_PARALLELISM=false
if [ -z "${HNEURONS_DATA_DIR:-}" ] && [ -d ../shared/data ]; then
  export HNEURONS_DATA_DIR=$(cd ../shared/data && pwd)
fi
python -m pytest "$@"
