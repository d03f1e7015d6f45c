#!/usr/bin/env bash
# Build the whole book: set up the environment, execute every chapter with papermill on the
# chosen profile (default: the embedded model on this CPU), then render the site with
# jupyter-book into book/_build/html.
#
#   scripts/build_book.sh                  # PROFILE=default
#   PROFILE=smoke scripts/build_book.sh    # what CI runs (minutes)
#   NOTEBOOKS="01_cett" scripts/build_book.sh   # only some chapters (the site shows the others
#                                               # only if an earlier build executed them here)
#   JOBS=1 scripts/build_book.sh           # strictly one chapter at a time
#   BOOK_OUT=/tmp/b scripts/build_book.sh  # executed notebooks and site there, book/ untouched
#   PROFILE=paper PARAMS=mine.yaml scripts/build_book.sh  # your overrides over the profile
set -eo pipefail
if [ -n "${PARAMS:-}" ]; then  # the overrides file, found from where the command was typed
  [ -f "$PARAMS" ] || { echo "PARAMS: no file $PARAMS" >&2; exit 2; }
  PARAMS=$(cd "$(dirname "$PARAMS")" && pwd)/$(basename "$PARAMS")
fi
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-default}
scripts/setup_env.sh
scripts/fetch_mathjax.sh
. .venv/bin/activate
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} HF_HUB_DISABLE_PROGRESS_BARS=1 TOKENIZERS_PARALLELISM=false
# the rendered pages keep the line that closes each long loop (its cost), not the updates in
# between (HNEURONS_PROGRESS=updates brings them back)
export HNEURONS_PROGRESS=${HNEURONS_PROGRESS:-done}
if [ -z "${HNEURONS_DATA_DIR:-}" ] && [ -d ../shared/data ]; then
  export HNEURONS_DATA_DIR=$(cd ../shared/data && pwd)
fi
[ -f "params/$PROFILE.yaml" ] || { echo "unknown profile $PROFILE (no params/$PROFILE.yaml)" >&2; exit 2; }
names=${NOTEBOOKS:-$(cd notebooks && ls [0-9][0-9]_*.py | sed 's/\.py$//')}
names=$(echo $names)  # one line, single spaces
# a misspelt name or a wrong type in PARAMS fails here, before any chapter runs
[ -z "${PARAMS:-}" ] || python -m hneurons_utils.profiles "$PROFILE" "notebooks/${names%% *}.py" "$PARAMS" > /dev/null
# a benchmark file missing with no public copy (BioASQ, FalseQA) stops the build here, named with
# how to get it, not when a chapter reaches it (CHECK_DATA=0 skips; chapters 1 and 6 read none)
if [ "${CHECK_DATA:-1}" != 0 ] && echo " $names " | grep -qE " 0[2-57]_"; then
  data_param=$(python -c 'import sys; from hneurons_utils.profiles import profile_values
print(profile_values(sys.argv[1], sys.argv[2] or None).get("DATA_DIR") or "")' "$PROFILE" "${PARAMS:-}")
  python -m hneurons_utils.data ${data_param:+"$data_param"} > /dev/null
fi
BOOK_OUT=${BOOK_OUT:-book}  # where executed notebooks and the site go (the tests use a temporary one)
if [ "$(cd "$(dirname "$BOOK_OUT")" 2>/dev/null && pwd)/$(basename "$BOOK_OUT")" != "$PWD/book" ]; then
  mkdir -p "$BOOK_OUT"
  cp -r book/*.md book/references.bib book/_mathjax "$BOOK_OUT"/  # the pages that are not notebooks
fi

# A chapter's parameters and unexecuted notebook go to a scratch folder outside the book, so a
# failed run leaves nothing there for jupyter-book to trip over (older runs wrote them beside
# the executed notebooks: remove any such leftovers).
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
rm -f "$BOOK_OUT"/.src-*.ipynb "$BOOK_OUT"/.params-*.yaml
run_chapter() {  # execute one chapter with papermill into $BOOK_OUT/<name>.ipynb
  local name=$1 start
  start=$(date +%s)
  echo "== executing notebooks/$name.py (profile $PROFILE)"
  # each chapter gets only the profile parameters its own parameters cell declares
  python -m hneurons_utils.profiles "$PROFILE" "notebooks/$name.py" ${PARAMS:+"$PARAMS"} > "$scratch/params-$name.yaml"
  jupytext --quiet --to ipynb -o "$scratch/src-$name.ipynb" "notebooks/$name.py"
  local try
  for try in 1 2 3; do
    if papermill "$scratch/src-$name.ipynb" "$BOOK_OUT/$name.ipynb" -k python3 --cwd . \
        -f "$scratch/params-$name.yaml" --no-progress-bar 2>&1 | tee "$scratch/out-$name.txt"; then
      echo "== $name: $(( $(date +%s) - start )) s"
      return 0
    fi
    # A kernel that dies before answering has run no cell. With two lanes, jupyter_client can
    # pick a TCP port for a new kernel that something else takes before the kernel binds it
    # ("Address already in use"): start that kernel again; any other failure stops the build.
    grep -q "Kernel died before replying to kernel_info" "$scratch/out-$name.txt" || return 1
    [ "$try" -lt 3 ] && echo "== $name: its kernel did not start (a port race); starting it again"
  done
  return 1
}

# Two lanes when the machine has a second core (JOBS=2, the default with two or more cores; one
# torch thread each). Chapter 5 identifies its own probe on its own model pair, so it needs no
# other chapter: it starts at once in the side lane, beside chapters 1-3. Chapter 4 follows it
# there once chapter 2 has written the probe it reads. The side lane's log is
# $BOOK_OUT/.log-side.txt; the scorecard (06) and the package tour (07) wait for both lanes.
cores=$(python -c 'import os; print(len(os.sched_getaffinity(0)))')  # nproc obeys OMP_NUM_THREADS
JOBS=${JOBS:-$([ "$cores" -gt 1 ] && echo 2 || echo 1)}
side=""
if [ "$JOBS" -gt 1 ] && [ "$(echo $names | wc -w)" -gt 1 ] && echo " $names " | grep -q " 05_origin "; then
  side=05_origin
  echo " $names " | grep -q " 04_behaviour " && side="05_origin 04_behaviour"
  for s in $side; do names=$(echo " $names " | sed "s/ $s / /"); done
  names=$(echo $names)
  first_side=$(echo $side | tr ' ' '\n' | sort | head -1)  # main-lane chapters after it wait for the side lane
  done02="$BOOK_OUT/.done-02_identification"
  rm -f "$done02"
  wait02=$(echo " $names " | grep -q " 02_identification " && echo 1 || true)
  echo "== running $side in a second lane (log: $BOOK_OUT/.log-side.txt)"
  (
    for s in $side; do
      if [ "$s" = 04_behaviour ] && [ -n "$wait02" ]; then
        echo "== 04_behaviour waits for chapter 2's probe"
        while [ ! -f "$done02" ]; do sleep 5; done
      fi
      run_chapter "$s"
    done
  ) > "$BOOK_OUT/.log-side.txt" 2>&1 &
  side_pid=$!
  # a failed chapter stops the other lane (each step may find nothing to do: never let errexit skip the rest)
  trap 'pkill -TERM -P "$side_pid" 2>/dev/null || true; kill "$side_pid" 2>/dev/null || true; rm -rf "$scratch"' EXIT
fi
wait_side() {  # wait for the side lane (if any) and fail loudly with its log if it failed
  [ -n "$side" ] || return 0
  wait "$side_pid" || { tail -50 "$BOOK_OUT/.log-side.txt"; echo "== side lane ($side) failed" >&2; exit 1; }
  grep "^== .*: [0-9]* s$" "$BOOK_OUT/.log-side.txt" || true
  side=""
}
for name in $names; do
  if [ -n "$side" ] && [[ "$name" > "$first_side" ]]; then wait_side; fi  # it may read their results
  run_chapter "$name"
  if [ "$name" = 02_identification ] && [ -n "$side" ]; then touch "$done02"; fi
done
wait_side
if [ -n "${done02:-}" ]; then rm -f "$done02"; fi
trap - EXIT
rm -rf "$scratch"
# warnings fail the build (-W), unless chapters were left out on purpose (NOTEBOOKS) and have no
# executed notebook here from an earlier build: the site then lacks them, and says so
strict=-W
absent=$(for nb in notebooks/[0-9][0-9]_*.py; do n=$(basename "$nb" .py); [ -f "$BOOK_OUT/$n.ipynb" ] || echo "$n"; done)
if [ -n "$absent" ] && [ -n "${NOTEBOOKS:-}" ]; then
  echo "note: no executed $(echo $absent) in $BOOK_OUT (NOTEBOOKS=\"$NOTEBOOKS\"): the site leaves them out, and their missing-page warnings do not fail this build" >&2
  strict=""
fi
jupyter-book build --builder html $strict -n --keep-going \
  --config "$PWD/_config.yml" --toc "$PWD/_toc.yml" --path-output "$BOOK_OUT" "$BOOK_OUT"
echo "Book: $(cd "$BOOK_OUT" && pwd)/_build/html/index.html"
