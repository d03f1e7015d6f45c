"""Profiles, parameter cells and data-directory resolution."""

from __future__ import annotations

import re

import pytest

from hneurons_utils import profiles

NOTEBOOKS = sorted((profiles.REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.py"))


parameters_of = profiles.notebook_parameters


def test_every_notebook_has_the_shared_parameters():
    """Each chapter exposes the shared parameter names with the default profile's values (the
    scorecard page reads only result files: it has no data folder and draws nothing at random)."""
    assert NOTEBOOKS, "no notebooks found"
    for nb in NOTEBOOKS:
        p = parameters_of(nb)
        assert p.get("PROFILE") == "default", nb.name
        assert p.get("OUTPUT_DIR") == "results/default", nb.name
        for name in () if nb.name == "06_summary.py" else ("DATA_DIR", "SEED"):
            assert name in p, f"{nb.name} lacks {name}"


@pytest.mark.parametrize("profile", ["smoke", "default", "paper"])
def test_profile_keys_are_real_parameters(profile):
    """A typo in params/<profile>.yaml would be silently injected by papermill: catch it."""
    known = set().union(*(parameters_of(nb) for nb in NOTEBOOKS))
    unknown = set(profiles.load_profile(profile)) - known
    assert not unknown, f"params/{profile}.yaml sets unknown parameters {sorted(unknown)}"


def test_profile_values_keep_parameter_types():
    """Overrides keep the type of the notebook default (an int stays an int, a list a list)."""
    defaults = {}
    for nb in NOTEBOOKS:
        defaults.update(parameters_of(nb))
    for profile in ("smoke", "paper"):
        for key, value in profiles.load_profile(profile).items():
            d = defaults.get(key)
            if d is None or value is None:
                continue
            ok = (isinstance(value, type(d)) or (isinstance(d, float) and isinstance(value, int))
                  or (d == "auto" and isinstance(value, bool)))  # tri-state True/False/"auto"
            assert ok, f"{profile}.{key}: {value!r} is not a {type(d).__name__}"


def test_unknown_profile_names_known_ones():
    """Asking for a profile that does not exist lists the ones that do."""
    with pytest.raises(FileNotFoundError, match="known profiles"):
        profiles.load_profile("nonesuch")


def test_data_dir_resolution(tmp_path, monkeypatch):
    """Explicit beats the environment; a missing folder is an error naming its source."""
    monkeypatch.setenv("HNEURONS_DATA_DIR", str(tmp_path))
    assert profiles.data_dir() == tmp_path
    assert profiles.data_dir(str(tmp_path)) == tmp_path
    monkeypatch.setenv("HNEURONS_DATA_DIR", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="HNEURONS_DATA_DIR"):
        profiles.data_dir()
    monkeypatch.delenv("HNEURONS_DATA_DIR")
    assert profiles.data_dir() is None


def test_parameter_lines_are_readable_by_papermill():
    """papermill's parameter inspector skips any line holding more than one '=' (even in a
    comment), so such a parameter would vanish from `papermill --help-notebook`."""
    for nb in NOTEBOOKS:
        cell = [c for c in re.split(r"^# %%", nb.read_text(), flags=re.M)
                if c.startswith(' tags=["parameters"]')][0]
        bad = [ln for ln in cell.splitlines()[1:] if ln.strip() and not ln.lstrip().startswith("#")
               and ln.count("=") > 1]
        assert not bad, f"{nb.name}: papermill cannot parse {bad}"


def test_profile_for_notebook_keeps_only_declared_parameters():
    """The build passes each chapter only its own parameters (no papermill warnings)."""
    nb = profiles.REPO_ROOT / "notebooks" / "01_cett.py"
    sub = profiles.profile_for_notebook("smoke", nb)
    assert sub["PROFILE"] == "smoke" and set(sub) <= set(parameters_of(nb))
    assert "SFT_STEPS" in profiles.load_profile("smoke") and "SFT_STEPS" not in sub
