"""The sparse probe (Section 6.1.3, Eq. 4): labels, fitting, C selection, JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hneurons_utils.probe import (NeuronSet, Probe, activation_size, fit_probe, random_neuron_set,
                                  select_C, size_matched_neuron_set, size_matched_pairs,
                                  size_percentiles,
                                  subset_probes, training_rows)

L, N = 3, 20  # a toy model: 3 layers x 20 neurons = 60 features


def toy(n: int = 120, seed: int = 0, signal: tuple = (7, 45)) -> tuple[np.ndarray, np.ndarray]:
    """CETT-like features where the neurons in ``signal`` rise on hallucinated answers."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.gamma(2.0, 0.01, size=(n, L * N))
    X[:, list(signal)] += 0.03 * y[:, None]
    return X, y


def test_three_vs_one_labels():
    """3-vs-1: hallucinated answers are 1; faithful answers and every other-token row are 0."""
    ans = np.array([[1.0], [2.0], [3.0]])
    oth = np.array([[10.0], [20.0], [30.0]])
    X, y = training_rows(ans, oth, np.array([1, 0, 1]), "3-vs-1")
    assert X[:, 0].tolist() == [1, 2, 3, 10, 20, 30]
    assert y.tolist() == [1, 0, 1, 0, 0, 0]


def test_one_vs_one_labels_and_nan_rows():
    """1-vs-1 keeps the answer rows with their labels; rows with a NaN mean are dropped."""
    ans = np.array([[1.0], [np.nan], [3.0]])
    X, y = training_rows(ans, None, np.array([1, 0, 0]), "1-vs-1")
    assert X[:, 0].tolist() == [1, 3] and y.tolist() == [1, 0]
    with pytest.raises(ValueError, match="other-token"):
        training_rows(ans, None, np.array([1, 0, 0]), "3-vs-1")
    with pytest.raises(ValueError, match="unknown label scheme"):
        training_rows(ans, None, np.array([1, 0, 0]), "2-vs-2")


@pytest.mark.parametrize("standardize", [False, True])
def test_fit_finds_the_signal_and_matches_sklearn(standardize):
    """The informative neurons get positive weights; decision_function equals scikit-learn's."""
    from sklearn.linear_model import LogisticRegression

    X, y = toy()
    C = 10.0 if standardize else 300.0
    p = fit_probe(X, y, C, standardize=standardize, n_layers=L, n_neurons=N)
    assert {7, 45} <= set(p.h_neurons().flat.tolist())
    Z = (X - X.mean(0)) / X.std(0) if standardize else X
    ref = LogisticRegression(l1_ratio=1.0, C=C, solver="liblinear", max_iter=2000, tol=1e-8,
                             random_state=0).fit(Z, y)
    np.testing.assert_allclose(p.decision_function(X), ref.decision_function(Z), rtol=1e-9, atol=1e-9)
    assert p.config["tol"] == 1e-8 and 0 < p.config["n_iter"] <= p.config["max_iter"] == 2000


def test_tolerance_is_recorded_and_a_tight_fit_is_nearer_the_minimum():
    """Eq. 4's objective is computed as liblinear fits it (intercept penalised); with far more
    neurons than rows, scikit-learn's default tolerance stops above the tight fit's objective and
    keeps more weights; a bad tolerance is refused."""
    from hneurons_utils.probe import DEFAULT_TOL, SKLEARN_TOL, eq4_objective

    rng = np.random.default_rng(3)
    n, Lw, Nw = 80, 20, 100
    y = np.repeat([0, 1], n // 2)
    X = rng.random((n, Lw * Nw)) * 0.3
    X[:, :40] += 0.15 * y[:, None] * rng.random((n, 40))  # many weak, correlated signals
    loose = fit_probe(X, y, 300.0, n_layers=Lw, n_neurons=Nw, tol=SKLEARN_TOL)
    tight = fit_probe(X, y, 300.0, n_layers=Lw, n_neurons=Nw)
    assert tight.config["tol"] == DEFAULT_TOL and loose.config["tol"] == SKLEARN_TOL
    z = tight.decision_function(X)
    manual = (np.abs(tight.weights).sum() + abs(tight.intercept)
              + 300.0 * np.log1p(np.exp(-(2 * y - 1) * z)).sum())
    assert eq4_objective(tight, X, y) == pytest.approx(manual, rel=1e-9)
    assert eq4_objective(tight, X, y) < 0.99 * eq4_objective(loose, X, y)
    assert loose.flat.size > tight.flat.size
    for bad in (0, -1e-4, float("nan"), float("inf"), "1e-4", True):
        with pytest.raises(ValueError, match="tol must be a positive number"):
            fit_probe(X, y, 1.0, n_layers=Lw, n_neurons=Nw, tol=bad)
    with pytest.raises(ValueError, match="3 labels for 80 rows"):
        eq4_objective(tight, X, y[:3])


def _wide(n: int = 60, seed: int = 5, k: int = 1600) -> tuple[np.ndarray, np.ndarray]:
    """Far more neurons than rows (k x 1 model), weak correlated signals: an L1 problem whose
    minimiser keeps some dozens of neurons."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    X = rng.gamma(2.0, 0.05, size=(n, k)).astype(np.float32)
    X[:, :30] += (0.08 * y[:, None] * rng.random((n, 30))).astype(np.float32)
    return X, y


@pytest.mark.parametrize("standardize", [False, True])
def test_working_set_reaches_the_full_fits_minimum(standardize, monkeypatch):
    """The working-set route gives the full fit's minimiser (objective, H-Neurons, weights), also
    when it starts from a working set far too small and must add the neurons that break the
    minimum's condition over several rounds; at its answer no neuron left at zero has a loss
    gradient above 1."""
    from hneurons_utils import probe as P

    X, y = _wide()
    kw = dict(n_layers=1600, n_neurons=1, standardize=standardize)
    full = fit_probe(X, y, 30.0, **kw)
    assert full.config["solve"] == "full" and "ws_rounds" not in full.config
    for start in (P.WS_START, 3):
        monkeypatch.setattr(P, "WS_START", start)
        monkeypatch.setattr(P, "_BLOCK", 256)  # the gradient read in several blocks
        ws = fit_probe(X, y, 30.0, solve="working-set", **kw)
        assert ws.config["solve"] == "working-set" and ws.config["ws_size"] < X.shape[1]
        assert ws.config["ws_rounds"] >= (2 if start == 3 else 1)  # start 3: 2 x 60 rows first
        o_full, o_ws = P.eq4_objective(full, X, y), P.eq4_objective(ws, X, y)
        assert o_ws == pytest.approx(o_full, rel=1e-6)
        assert ws.h_neurons().flat.tolist() == full.h_neurons().flat.tolist() and ws.h_neurons().size > 3
        wf, ww = np.zeros(X.shape[1]), np.zeros(X.shape[1])
        wf[full.flat], ww[ws.flat] = full.weights, ws.weights
        np.testing.assert_allclose(ww, wf, atol=1e-3 * np.abs(wf).max())
        Z = (X - X.mean(0)) / X.std(0) if standardize else X.astype(np.float64)
        s = 2.0 * y - 1
        r = s * (1 / (1 + np.exp(-s * ws.decision_function(X))) - 1)
        g = 30.0 * (r @ Z)
        assert np.abs(g[ww == 0]).max() <= 1 + 1e-6
    monkeypatch.setattr(P, "_BLOCK", 4)  # blocks like [0, 2, 1, 3]: their ends look like a run, they are not one
    cols = np.arange(1600).reshape(-1, 4)[:, [0, 2, 1, 3]].ravel()[:1300]
    some = fit_probe(X, y, 30.0, columns=cols, **kw)
    ws = fit_probe(X, y, 30.0, columns=cols, solve="working-set", **kw)
    assert sorted(ws.h_neurons().flat.tolist()) == sorted(some.h_neurons().flat.tolist())
    assert P.eq4_objective(ws, X, y) == pytest.approx(P.eq4_objective(some, X, y), rel=1e-6)


def test_a_full_fit_that_cannot_fit_in_memory_is_refused_naming_the_working_set(monkeypatch):
    """With less free memory than a full fit's copies need, the full route stops before copying,
    with both figures and the way out; the working set fits the same rows; bad routes are refused."""
    from hneurons_utils import probe as P

    X, y = _wide()
    need = P.fit_memory_bytes(*X.shape)
    assert need == X.shape[0] * X.shape[1] * P.FULL_BYTES_PER_VALUE
    assert P.fit_memory_bytes(4000, 458752) / 2 ** 30 > 60  # a 7B model's paper-scale fit
    monkeypatch.setattr(P, "_available_bytes", lambda: need - 1)
    with pytest.raises(MemoryError, match=r"needs about 0.0 GiB .* solve='working-set' \(PROBE_SOLVE"):
        fit_probe(X, y, 30.0, n_layers=1600, n_neurons=1)
    assert fit_probe(X, y, 30.0, n_layers=1600, n_neurons=1, solve="working-set").h_neurons().size
    monkeypatch.setattr(P, "_available_bytes", lambda: 10)  # not even the working set fits
    with pytest.raises(MemoryError, match=r"60 rows x 1000 neurons .* the working set has grown to 1000 neurons in 0 rounds"):
        fit_probe(X, y, 30.0, n_layers=1600, n_neurons=1, solve="working-set")
    monkeypatch.setattr(P, "_available_bytes", lambda: None)  # not Linux: no figure, no refusal
    assert fit_probe(X, y, 30.0, n_layers=1600, n_neurons=1).config["solve"] == "full"
    with pytest.raises(ValueError, match=r"solve must be one of \('full', 'working-set'\), got 'fast'"):
        fit_probe(X, y, 30.0, n_layers=1600, n_neurons=1, solve="fast")
    with pytest.raises(ValueError, match="solve='working-set' needs penalty='l1'"):
        fit_probe(X, y, 30.0, n_layers=1600, n_neurons=1, solve="working-set", penalty="l2")
    with pytest.raises(ValueError, match="only scikit-learn's liblinear .* got solver='saga'"):
        fit_probe(X, y, 30.0, n_layers=1600, n_neurons=1, solver="saga")


def test_a_nan_is_found_and_placed_block_by_block(monkeypatch):
    """The finite check reads a few rows at a time and still names the first bad row and counts
    every bad row of the whole matrix (and only in the columns fitted)."""
    from hneurons_utils import probe as P

    monkeypatch.setattr(P, "_FINITE_VALUES", 100)  # 1600 columns: one row per block
    X, y = _wide()
    X[[17, 40], 5] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinite values in 2 of 60 rows \(first: row 17\)"):
        fit_probe(X, y, 30.0, n_layers=1600, n_neurons=1, solve="working-set")
    assert fit_probe(X, y, 1.0, n_layers=1600, n_neurons=1, columns=np.arange(6, 40)).flat.size >= 0


def test_refit_kw_repeats_the_probes_recipe():
    """Refitting with refit_kw on the probe's own rows gives the probe back (recipe, tolerance and
    metadata); an override replaces one setting only."""
    from hneurons_utils.probe import refit_kw

    X, y = toy()
    p = fit_probe(X, y, 10.0, standardize=True, seed=3, tol=1e-6, n_layers=L, n_neurons=N,
                  model_id="m", label_scheme="1-vs-1")
    again = fit_probe(X, y, p.C, **refit_kw(p))
    timeless = lambda q: dict(q.to_dict(), config={k: v for k, v in q.config.items() if k != "fit_s"})  # noqa: E731
    assert timeless(again) == timeless(p) and again.config.keys() == p.config.keys()
    kw = refit_kw(p, tol=1e-4)
    assert kw["tol"] == 1e-4 and kw["seed"] == 3 and kw["standardize"] is True and kw["solve"] == "full"
    assert refit_kw(fit_probe(X, y, 10.0, n_layers=L, n_neurons=N, solve="working-set"))["solve"] == "working-set"
    assert kw["label_scheme"] == "1-vs-1" and kw["model_id"] == "m" and (kw["n_layers"], kw["n_neurons"]) == (L, N)


def test_h_neurons_are_the_positive_weights():
    """H-Neurons = positive weights only; per mille counts them against all neurons."""
    p = Probe("m", L, N, np.array([3, 25, 41]), np.array([0.5, -0.2, 1.5]), 0.0, 1.0,
              np.zeros(3), np.ones(3))
    h = p.h_neurons()
    assert h.flat.tolist() == [3, 41] and h.by_layer()[2].tolist() == [1]
    assert h.per_mille == pytest.approx(1000 * 2 / 60)
    assert p.neurons(-1).flat.tolist() == [25] and p.neurons(0).size == 3


def test_composition_names_what_the_probe_reads():
    """The probe's neurons by sign, and a warning where a negative weight is the largest."""
    def probe(w):
        return Probe("m", L, N, np.arange(len(w)), np.array(w, float), 0.0, 1.0, np.zeros(len(w)),
                     np.ones(len(w)))

    text = probe([-11.27, 4.21, -1.11, -3.26]).composition()
    assert text.startswith("the probe reads 4 neurons: 1 H-Neuron (positive weight, largest +4.21) "
                           "and 3 with a negative weight (largest in size -11.27)")
    assert text.endswith("so a score of the whole probe is not the H-Neurons' alone")
    assert probe([0.5, -0.2, 1.5]).composition() == (
        "the probe reads 3 neurons: 2 H-Neurons (positive weight, largest +1.50) and 1 with a "
        "negative weight (largest in size -0.20)")
    assert probe([0.5]).composition() == ("the probe reads 1 neuron: 1 H-Neuron (positive weight, "
                                          "largest +0.50) and 0 with a negative weight")


def test_save_load_round_trip_is_exact(tmp_path):
    """A saved probe loads with bit-identical weights and gives identical decisions."""
    X, y = toy()
    p = fit_probe(X, y, 3.0, standardize=True, n_layers=L, n_neurons=N, model_id="toy",
                  config={"note": "test"})
    path = p.save(tmp_path / "probe.json")
    q = Probe.load(path)
    assert np.array_equal(q.weights, p.weights) and np.array_equal(q.flat, p.flat)
    assert np.array_equal(q.mean, p.mean) and np.array_equal(q.std, p.std)
    assert q.intercept == p.intercept and q.C == p.C and q.model_id == "toy"
    assert np.array_equal(q.decision_function(X), p.decision_function(X))
    assert "pickle" not in path.read_text() and json.loads(path.read_text())["label_scheme"] == "3-vs-1"


def test_load_errors(tmp_path):
    """A missing probe says which chapter makes it; a foreign JSON is refused."""
    with pytest.raises(FileNotFoundError, match="02_identification"):
        Probe.load(tmp_path / "nope.json")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ValueError, match="not a probe file"):
        Probe.load(tmp_path / "x.json")
    (tmp_path / "torn.json").write_text('{"model_id": "m", "n_la')
    with pytest.raises(ValueError, match="not valid JSON"):
        Probe.load(tmp_path / "torn.json")
    path = Probe("/runs/a/model", L, N, np.array([1]), np.array([1.0]), 0.0, 1.0, np.zeros(1),
                 np.ones(1)).save(tmp_path / "probe.json")
    assert Probe.load(path, "/runs/a/model").model_id == "/runs/a/model"
    with pytest.raises(ValueError, match="probe of '/runs/a/model', not of '/runs/b/model'"):
        Probe.load(path, "/runs/b/model")  # same shape, same results folder name: still refused
    d = json.loads(path.read_text())
    for name, bad in (("lost", {k: v for k, v in d.items() if k != "std"}), ("extra", {**d, "stdev": 1})):
        (tmp_path / f"{name}.json").write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=r"lost.json is a damaged probe file \(missing \['std'\]"
                           if name == "lost" else r"extra.json is a damaged probe file .*unknown \['stdev'\]"):
            Probe.load(tmp_path / f"{name}.json")
    (tmp_path / "binary.json").write_bytes(b"\x89PNG\xff\xfe")
    with pytest.raises(ValueError, match="binary.json is not valid JSON"):
        Probe.load(tmp_path / "binary.json")


@pytest.mark.parametrize("flat, std, problem", [([60], [1.0], "out of range"), ([-1], [1.0], "out of range"),
                                                ([2, 2], [1.0, 1.0], "twice"), ([2], [0.0], "positive")])
def test_probe_refuses_bad_indices_and_scales(flat, std, problem):
    """A negative index would wrap around in X[:, flat]; a zero std would divide by zero."""
    with pytest.raises(ValueError, match=problem):
        Probe("m", L, N, np.array(flat), np.ones(len(flat)), 0.0, 1.0, np.zeros(len(flat)), np.array(std))


def test_decision_function_checks_width():
    """Features of the wrong width (another model) are refused with the expected shape."""
    p = Probe("m", L, N, np.array([1]), np.array([1.0]), 0.0, 1.0, np.zeros(1), np.ones(1))
    with pytest.raises(ValueError, match=r"\[n, 60\]"):
        p.decision_function(np.zeros((2, 59)))


def test_select_C_by_held_out_accuracy_and_hook():
    """C maximises held-out accuracy; a suppression hook adds to the score and can move it."""
    X, y = toy(seed=1)
    Xv, yv = toy(seed=2)
    Cs = [0.01, 300.0]  # 0.01 zeroes every weight (chance), 300 finds the signal
    p, grid = select_C(X, y, Xv, yv, Cs, n_layers=L, n_neurons=N)
    assert p.C == 300.0 and [r["chosen"] for r in grid] == [False, True]
    assert grid[0]["n_nonzero"] == 0 and grid[1]["val_accuracy"] > 0.8
    hook = lambda probe: 5.0 if probe.C == 0.01 else 0.0  # noqa: E731
    p2, grid2 = select_C(X, y, Xv, yv, Cs, suppression_score=hook, n_layers=L, n_neurons=N)
    assert p2.C == 0.01 and grid2[0]["suppression"] == 5.0


def _count_fits(monkeypatch) -> list:
    """Every liblinear fit from here on, counted (a fit read from a FitCache makes none)."""
    from hneurons_utils import probe as P

    calls, real = [], P._liblinear
    monkeypatch.setattr(P, "_liblinear", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    return calls


def test_fit_cache_returns_the_stored_fit_exactly_and_refits_what_differs(tmp_path, monkeypatch):
    """A second identical fit is read, not fitted, and is the first bit for bit with the asking
    call's config; a default given explicitly is the same fit; another C, tolerance, route,
    column set, label or a single feature value is another fit."""
    from hneurons_utils.probe import DEFAULT_TOL, FitCache

    X, y = toy(seed=3)
    kw = dict(n_layers=L, n_neurons=N)
    fits, calls = FitCache(tmp_path / "fits"), _count_fits(monkeypatch)
    first = fits.fit(X, y, 30.0, config={"run": 1}, **kw)
    assert fits.summary() == f"1 probe fit computed (kept in {tmp_path / 'fits'})"
    again = fits.fit(X, y, 30.0, config={"run": 2}, tol=DEFAULT_TOL, solve="full", **kw)
    assert (fits.hits, fits.misses, len(calls)) == (1, 1, 1)
    for name in ("flat", "weights", "mean", "std"):
        assert np.array_equal(getattr(first, name), getattr(again, name))
    assert again.intercept == first.intercept and again.C == first.C
    assert again.config == dict(first.config, run=2) and again.config["fit_s"] == first.config["fit_s"]
    X2 = X.copy()
    X2[5, 7] = np.nextafter(X2[5, 7], 1.0)  # one value, one step
    y2 = y.copy()
    y2[0] = 1 - y2[0]
    for other in ((X, y, 10.0, {}), (X, y, 30.0, {"tol": 1e-4}), (X, y, 30.0, {"solve": "working-set"}),
                  (X, y, 30.0, {"columns": np.arange(0, 60, 2)}), (X2, y, 30.0, {}), (X, y2, 30.0, {})):
        fits.fit(other[0], other[1], other[2], **other[3], **kw)
    assert (fits.hits, fits.misses, len(calls)) == (1, 7, 7)
    assert len(list((tmp_path / "fits").glob("*.json"))) == 7
    assert "1 probe fit read from" in fits.summary() and fits.summary().endswith("7 computed")
    from hneurons_utils import probe as P

    monkeypatch.setattr(P, "fit_code", lambda: "the fitting code, changed")
    fits.fit(X, y, 30.0, **kw)  # stored by other code: fitted again, never read back
    assert (fits.hits, fits.misses) == (1, 8)


def test_fit_cache_refits_a_damaged_file_and_says_so(tmp_path, monkeypatch, capsys):
    from hneurons_utils.probe import FitCache

    X, y = toy(seed=4)
    fits = FitCache(tmp_path)
    p = fits.fit(X, y, 30.0, n_layers=L, n_neurons=N)
    (path,) = tmp_path.glob("*.json")
    path.write_text('{"format": "hneurons-probe/1", "flat": [1')  # a write cut short by hand
    calls = _count_fits(monkeypatch)
    q = fits.fit(X, y, 30.0, n_layers=L, n_neurons=N)
    assert len(calls) == 1 and "is damaged" in capsys.readouterr().out
    assert np.array_equal(q.weights, p.weights)
    assert FitCache(tmp_path).fit(X, y, 30.0, n_layers=L, n_neurons=N).config == p.config | {"fit_s": q.config["fit_s"]}


def test_rows_key_reads_every_byte_a_block_at_a_time(monkeypatch):
    from hneurons_utils import probe as P

    X, y = toy(seed=5)
    whole = P.rows_key(X, y)
    monkeypatch.setattr(P, "_HASH_BYTES", 100)  # a block of one row
    assert P.rows_key(X, y) == whole == P.rows_key(X.copy(), y.copy())
    assert P.rows_key(X.astype(np.float32), y) != whole  # same values, another type
    X2 = X.copy()
    X2[-1, -1] += 1e-12
    assert P.rows_key(X2, y) != whole and P.rows_key(X, y[::-1]) != whole


def test_select_C_resumes_an_interrupted_grid_with_the_same_result(tmp_path, monkeypatch):
    """An interruption after two of four C values: the rerun fits the other two only, and gives
    the grid and probe an uninterrupted run without a cache gives."""
    from hneurons_utils.probe import FitCache

    X, y = toy(seed=1)
    Xv, yv = toy(seed=2)
    Cs = [0.01, 1.0, 30.0, 300.0]
    plain, plain_grid = select_C(X, y, Xv, yv, Cs, n_layers=L, n_neurons=N)

    def stop_at_third(p):
        if p.C == 30.0:
            raise KeyboardInterrupt
        return 0.0

    with pytest.raises(KeyboardInterrupt):
        select_C(X, y, Xv, yv, Cs, stop_at_third, FitCache(tmp_path), n_layers=L, n_neurons=N)
    calls = _count_fits(monkeypatch)
    fits = FitCache(tmp_path)
    p, grid = select_C(X, y, Xv, yv, Cs, None, fits, n_layers=L, n_neurons=N)
    assert calls == [300.0] and (fits.hits, fits.misses) == (3, 1)  # 30 was fitted before the stop
    assert grid == plain_grid
    assert p.C == plain.C and np.array_equal(p.weights, plain.weights)


def test_subset_probes_use_only_their_neurons():
    """A baseline classifier reads only the neurons it was given (random or H-Neurons)."""
    X, y = toy()
    rand = random_neuron_set(4, L, N, seed=0)
    (p,) = subset_probes(X, y, [rand])
    assert set(p.flat.tolist()) <= set(rand.flat.tolist())
    X2 = X.copy()
    others = np.setdiff1d(np.arange(L * N), rand.flat)
    X2[:, others] = 123.0
    np.testing.assert_array_equal(p.decision_function(X), p.decision_function(X2))
    with pytest.raises(ValueError, match="empty neuron set"):
        subset_probes(X, y, [NeuronSet(np.array([], int), np.array([], int), L, N)])


def test_single_class_training_set_is_refused():
    """A training set with one label cannot give a probe: say so instead of a sklearn trace."""
    X, _ = toy(10)
    with pytest.raises(ValueError, match="both labels"):
        fit_probe(X, np.ones(10, int), 1.0, n_layers=L, n_neurons=N)


def test_nan_feature_rows_are_refused_with_their_count():
    """A NaN row (a response with no answer token) would score NaN, which predict counts as
    class 0 and select_C as an accuracy: scoring, fitting and C selection refuse it."""
    X, y = toy()
    p = fit_probe(X, y, 300.0, n_layers=L, n_neurons=N)
    Xn = X.copy()
    Xn[[0, 5], :] = np.nan
    Xn[7, p.flat[0]] = np.inf
    for score in (p.decision_function, p.predict):
        with pytest.raises(ValueError, match=r"NaN or infinite values in 3 of 120 rows"):
            score(Xn)
    with pytest.raises(ValueError, match=r"^X holds NaN .* 3 of 120 rows"):
        fit_probe(Xn, y, 1.0, n_layers=L, n_neurons=N)
    with pytest.raises(ValueError, match=r"^X_val holds NaN .* 3 of 120 rows"):
        select_C(X, y, Xn, y, [1.0], n_layers=L, n_neurons=N)


def test_model_shape_is_required_and_must_match_the_features():
    """Without n_layers/n_neurons the error says to pass them (not "out of range [0, 0)"); a
    neuron set of another model's shape is refused by subset_probes."""
    X, y = toy()
    with pytest.raises(ValueError, match="pass the model's shape, n_layers= and n_neurons="):
        fit_probe(X, y, 1.0)
    with pytest.raises(ValueError, match="pass the model's shape"):
        select_C(X, y, X, y, [1.0])
    with pytest.raises(ValueError, match=r"X has 60 columns, but .* 2 x 20 = 40"):
        fit_probe(X, y, 1.0, n_layers=2, n_neurons=N)
    with pytest.raises(ValueError, match=r"neuron set 0 is of a 4 x 50 model .* 60 columns"):
        subset_probes(X, y, [NeuronSet([0], [3], 4, 50)])


def test_screened_neuron_set_keeps_the_individually_best_neurons():
    """Planted signals: the one-sided screen keeps the neurons more active on label 1, the
    two-sided one also the neuron that is less active; bad k and one-class labels are errors."""
    from hneurons_utils.probe import screened_neuron_set
    from hneurons_utils.stats import column_aurocs

    rng = np.random.default_rng(1)
    y = np.r_[np.ones(50, int), np.zeros(50, int)]
    X = rng.normal(size=(100, 2 * 4))  # 2 layers x 4 neurons
    X[:, 5] += 3 * y  # layer 1, neuron 1: up on hallucinations
    X[:, 2] += 2 * y  # layer 0, neuron 2: up, less
    X[:, 6] -= 4 * y  # layer 1, neuron 2: down on hallucinations
    auc = column_aurocs(X, y)
    one = screened_neuron_set(auc, 2, 2, 4)
    assert one.flat.tolist() == [2, 5]
    two = screened_neuron_set(auc, 2, 2, 4, two_sided=True)
    assert two.flat.tolist() == [5, 6]
    with pytest.raises(ValueError, match="k must be in 1..8"):
        screened_neuron_set(auc, 0, 2, 4)
    with pytest.raises(ValueError, match="expected \\(3 x 4"):
        screened_neuron_set(auc, 1, 3, 4)
    with pytest.raises(ValueError, match="one class only"):
        screened_neuron_set(column_aurocs(X, np.ones(100, int)), 1, 2, 4)


def test_fractional_indices_and_non_finite_weights_are_refused():
    """3.7 would be truncated to neuron 3, a NaN weight would drop its neuron from the
    H-Neurons without a word; whole floats (3.0, as JSON may give them) are fine."""
    with pytest.raises(ValueError, match="neuron indices must be whole numbers"):
        NeuronSet([0], [3.7], L, N)
    with pytest.raises(ValueError, match="flat neuron indices must be whole numbers"):
        NeuronSet.from_flat(np.array([2.5]), L, N)
    assert NeuronSet([0.0], [3.0], L, N).neurons.tolist() == [3]
    for field, bad in (("weights", [np.nan]), ("mean", [np.inf])):
        args = dict(weights=[1.0], mean=[0.0])
        args[field] = bad
        with pytest.raises(ValueError, match=f"Probe.{field} holds a NaN or infinite"):
            Probe("m", L, N, np.array([1]), np.array(args["weights"]), 0.0, 1.0,
                  np.array(args["mean"]), np.ones(1))
    with pytest.raises(ValueError, match="neuron indices must be whole numbers"):
        Probe("m", L, N, np.array([1.5]), np.ones(1), 0.0, 1.0, np.zeros(1), np.ones(1))


def test_size_matched_sets_match_layer_and_size_and_avoid_the_h_neurons():
    """Each H-Neuron gets a distinct partner of its own layer among the neurons closest to it in
    size, never an H-Neuron; seeds give other draws; a size table of another shape is refused."""
    rng = np.random.default_rng(0)
    size = rng.random((3, 200))
    size[1, 7], size[2, 50] = 5.0, 4.0  # two outsized neurons: their partners are the largest left
    h = NeuronSet(np.array([1, 1, 2, 0]), np.array([7, 8, 50, 3]), 3, 200)
    a = size_matched_neuron_set(h, size, seed=1)
    assert list(a.layer_counts()) == list(h.layer_counts()) and a.size == h.size
    assert not set(a.flat) & set(h.flat)
    for layer, j in zip(h.layers, h.neurons):
        others = np.setdiff1d(np.arange(200), h.by_layer()[layer])
        rank = np.argsort(np.abs(size[layer, others] - size[layer, j]))
        assert set(a.by_layer()[layer]) & set(others[rank[:10]])  # one of its ten nearest
    assert size_percentiles(NeuronSet(np.array([1]), np.array([7]), 3, 200), size)[0] == 100.0
    partner = NeuronSet(np.array([2]), a.by_layer()[2], 3, 200)  # of the outsized neuron 50
    assert size_percentiles(partner, size)[0] > 90  # as large as any neuron left there
    assert list(size_matched_neuron_set(h, size, seed=1).flat) == list(a.flat)
    assert list(size_matched_neuron_set(h, size, seed=2).flat) != list(a.flat)
    with pytest.raises(ValueError, match="size is"):
        size_matched_neuron_set(h, size[:2], seed=1)
    np.testing.assert_allclose(activation_size(np.stack([size, 3 * size])), 2 * size)
    pairs = size_matched_pairs(h, size, seed=1)  # the same draw, with each partner's H-Neuron
    assert sorted(pairs[:, 1]) == sorted(a.flat) and sorted(pairs[:, 0]) == sorted(h.flat)
    assert all(p // 200 == q // 200 for p, q in pairs)  # same layer


def test_random_controls_never_draw_an_excluded_neuron():
    """A control drawn with ``exclude`` holds none of those neurons, keeps the layer counts, is
    the unexcluded draw whenever that draw held none of them, and is uniform over the rest (each
    allowed neuron is picked about equally often)."""
    h = NeuronSet(np.array([0, 0, 1, 2]), np.array([1, 2, 3, 4]), 3, 10)
    probe_neurons = NeuronSet.from_flat(np.array([0, 1, 2, 5, 6, 13, 14, 24, 25]), 3, 10)
    counts = np.zeros(30)
    changed = 0
    for seed in range(2000):
        a = random_neuron_set(h.size, 3, 10, seed, like=h, exclude=probe_neurons)
        b = random_neuron_set(h.size, 3, 10, seed, like=h)
        assert not set(a.flat) & set(probe_neurons.flat)
        assert list(a.layer_counts()) == list(h.layer_counts())
        if not set(b.flat) & set(probe_neurons.flat):
            assert list(a.flat) == list(b.flat)
        else:
            changed += 1
        counts[a.flat] += 1
    assert changed > 0
    layer0 = counts[[3, 4, 7, 8, 9]]  # the layer-0 neurons allowed: 2 picks of 5 each time
    assert np.all(np.abs(layer0 / 2000 - 2 / 5) < 0.05)
    assert counts[probe_neurons.flat].sum() == 0
    flat = random_neuron_set(5, 3, 10, 0, exclude=np.array([0, 1, 2]))
    assert flat.size == 5 and not set(flat.flat) & {0, 1, 2}
    with pytest.raises(ValueError, match="too few left"):
        random_neuron_set(9, 1, 10, 0, like=NeuronSet.from_flat(np.arange(9), 1, 10),
                          exclude=np.array([9, 8]))
    with pytest.raises(ValueError, match="exclude is a"):
        random_neuron_set(2, 3, 10, 0, like=h, exclude=NeuronSet.from_flat(np.array([1]), 2, 10))
    rng = np.random.default_rng(0)
    size = rng.random((3, 10))
    pairs = size_matched_pairs(h, size, seed=0, window=3, exclude=probe_neurons)
    assert not set(pairs[:, 1]) & set(probe_neurons.flat) and sorted(pairs[:, 0]) == sorted(h.flat)


def test_labels_and_columns_outside_their_range_are_refused():
    """Labels other than 0/1 (0.7 was cast to 0, -1 read as a class), a label count that does
    not match X, and column indices outside X are errors, not a probe of something else."""
    X, y = toy()
    for bad in (np.where(y == 1, 0.7, 0.0), np.where(y == 1, 1, -1)):
        with pytest.raises(ValueError, match="labels must be 0/1"):
            fit_probe(X, bad, 1.0, n_layers=L, n_neurons=N)
    with pytest.raises(ValueError, match="labels for"):
        fit_probe(X, y[:-1], 1.0, n_layers=L, n_neurons=N)
    with pytest.raises(ValueError, match="columns must lie in"):
        fit_probe(X, y, 1.0, n_layers=L, n_neurons=N, columns=np.array([0, X.shape[1]]))


def test_part_scores_split_the_decision_function_by_weight_sign():
    """positive + negative + intercept is the decision function; each part reads only its
    neurons, standardised as in the fit; a part without neurons is zeros."""
    probe = Probe("m", 1, 4, np.array([0, 2, 3]), np.array([2.0, -1.0, 0.5]), 0.25, 1.0,
                  np.array([1.0, 0.0, 0.0]), np.array([2.0, 1.0, 1.0]), standardize=True)
    X = np.array([[3.0, 9.0, 1.0, 2.0], [1.0, 9.0, 4.0, 0.0]])
    s = probe.part_scores(X)
    assert s["positive"] == pytest.approx([2.0 * (3 - 1) / 2 + 0.5 * 2, 0.0])
    assert s["negative"] == pytest.approx([-1.0, -4.0])
    assert s["full"] == pytest.approx(probe.decision_function(X))
    only_pos = Probe("m", 1, 4, np.array([1]), np.array([1.0]), 0.0, 1.0, np.zeros(1), np.ones(1))
    assert only_pos.part_scores(X)["negative"].tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="expected features"):
        probe.part_scores(X[:, :3])
