"""hneurons_utils: the executable companion to "H-Neurons" (Gao et al., 2025, arXiv 2512.01797).

One module per pipeline step: ``models`` (loading, architecture adapters), ``cett`` (the
contribution measure, Eq. 1-2), ``data``, ``sampling``, ``judges``, ``answer_spans``,
``features``, ``probe``, ``pipeline``, ``detection``, ``stats``, ``steering``, ``benchmarks``
(Figure 3's suites), ``sweep`` (the alpha sweep), ``compliance`` (its judges), ``behaviour``
(compliance rates, slopes, Figure 3), ``origin`` (the base / instruct pair, base-model answers),
``transfer`` (backward transfer, Figure 4a), ``drift`` (parameter drift, Figure 4b), ``finetune``,
``summary`` (the scorecard page), ``paper``, ``plots``, ``profiles``, ``progress``.
"""

__version__ = "0.1.0"

import warnings as _warnings

# Jupyter kernels without ipywidgets: tqdm.auto (imported by transformers) warns once per
# notebook; the text progress bar it falls back to is what we want in executed notebooks.
_warnings.filterwarnings("ignore", message="IProgress not found")
