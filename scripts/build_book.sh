#!/usr/bin/env bash
# Build the whole book: set up the environment, execute every chapter with papermill on the
# chosen profile (default: the embedded model on this CPU), then render the site with
# jupyter-book into book/_build/html.
#
#   scripts/build_book.sh                  # PROFILE=default
#   PROFILE=smoke scripts/build_book.sh    # what CI runs (minutes)
#   NOTEBOOKS="01_cett" scripts/build_book.sh   # only some chapters (others must exist already)
set -eo pipefail
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-default}
scripts/setup_env.sh
scripts/fetch_mathjax.sh
. .venv/bin/activate
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} HF_HUB_DISABLE_PROGRESS_BARS=1 TOKENIZERS_PARALLELISM=false
if [ -z "${HNEURONS_DATA_DIR:-}" ] && [ -d ../shared/data ]; then
  export HNEURONS_DATA_DIR=$(cd ../shared/data && pwd)
fi
[ -f "params/$PROFILE.yaml" ] || { echo "unknown profile $PROFILE (no params/$PROFILE.yaml)" >&2; exit 2; }
names=${NOTEBOOKS:-$(cd notebooks && ls [0-9][0-9]_*.py | sed 's/\.py$//')}
for name in $names; do
  echo "== executing notebooks/$name.py (profile $PROFILE)"
  start=$(date +%s)
  # each chapter gets only the profile parameters its own parameters cell declares
  python -m hneurons_utils.profiles "$PROFILE" "notebooks/$name.py" > "book/.params-$name.yaml"
  jupytext --quiet --to ipynb -o "book/.src-$name.ipynb" "notebooks/$name.py"
  papermill "book/.src-$name.ipynb" "book/$name.ipynb" -k python3 --cwd . \
    -f "book/.params-$name.yaml" --no-progress-bar
  rm -f "book/.params-$name.yaml" "book/.src-$name.ipynb"
  echo "== $name: $(( $(date +%s) - start )) s"
done
jupyter-book build --builder html -W -n --keep-going \
  --config "$PWD/_config.yml" --toc "$PWD/_toc.yml" --path-output book book
echo "Book: $(pwd)/book/_build/html/index.html"
