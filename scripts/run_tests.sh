#!/usr/bin/env bash
# Set up the environment, then run every test (unit tests on tiny models, the slow tests on
# the real embedded model, and the smoke build of the whole book).
set -eo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh
scripts/fetch_mathjax.sh
. .venv/bin/activate
export OMP_NUM_THREADS=1 HF_HUB_DISABLE_PROGRESS_BARS=1 TOKENIZERS_PARALLELISM=false
if [ -z "${HNEURONS_DATA_DIR:-}" ] && [ -d ../shared/data ]; then
  export HNEURONS_DATA_DIR=$(cd ../shared/data && pwd)
fi
# The smoke build reads every benchmark: a file missing with no public copy (BioASQ, FalseQA)
# stops here, named with how to get it (CHECK_DATA=0 skips this; the smoke build then fails).
# With every file local nothing is fetched, so the Hub is switched off (models load locally);
# otherwise the absent files come from the Hugging Face Hub and the network is needed.
if [ "${CHECK_DATA:-1}" != 0 ]; then
  sources=$(python -m hneurons_utils.data)
  if echo "$sources" | grep -q ': hub ('; then
    echo "benchmark files not in the data directory, to be fetched from the Hugging Face Hub:"
    echo "$sources" | grep ': hub ('
  else
    export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
  fi
fi
python -m pytest "$@"
