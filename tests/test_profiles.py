"""Profiles, parameter cells and data-directory resolution."""

from __future__ import annotations

import re

import pytest

from hneurons_utils import profiles
from hneurons_utils.profiles import REPO_ROOT

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


@pytest.mark.parametrize("profile", ["smoke", "paper"])
def test_profile_values_keep_parameter_types(profile):
    """Overrides keep the type of the notebook default (an int stays an int, a list a list)."""
    assert profiles.type_problems(profiles.load_profile(profile), profiles.all_parameters()) == []


def test_type_problems_name_unknown_names_and_wrong_types():
    """The check behind PARAMS files: unknown names and changed types are named; an int for a
    float, None, and a bool for a tri-state "auto" pass."""
    defaults = {"N": 10, "LR": 0.1, "IDS": [1], "SCREEN": "auto", "X": None}
    ok = {"N": 5, "LR": 1, "IDS": [], "SCREEN": False, "X": "anything"}
    assert profiles.type_problems(ok, defaults) == []
    bad = profiles.type_problems({"N": "5", "LR": True, "MODLE": 1}, defaults)
    assert bad == ["N: '5' has type str, but its default 10 has type int",
                   "LR: True has type bool, but its default 0.1 has type float",
                   "MODLE is not a parameter of any chapter"]


def test_type_problems_take_no_bool_for_a_number_and_check_list_items():
    """YAML reads ``N_BOOT: yes`` as True, which Python would use as 1; a list's items must
    each fit one of the default's items (numbers for ALPHAS, not their text)."""
    defaults = {"N": 10, "ALPHAS": [0, 0.5, 3], "FLAG": True, "NAMES": ["a"], "ANY": []}
    ok = {"N": 3, "ALPHAS": [0, 1, 2.5], "FLAG": False, "NAMES": ["b", "c"], "ANY": [1, "x"]}
    assert profiles.type_problems(ok, defaults) == []
    bad = profiles.type_problems({"N": True, "ALPHAS": ["0", "x"], "FLAG": 1, "NAMES": [1]}, defaults)
    assert [b.split(":")[0] for b in bad] == ["N", "ALPHAS", "FLAG", "NAMES"]


def test_overrides_file_is_checked_and_laid_over_the_profile(tmp_path):
    """A user's YAML overrides the profile for the chapters that declare its names."""
    mine = tmp_path / "mine.yaml"
    mine.write_text("MODEL_ID: gpt2\nN_PROMPTS: 8\n")
    nb = profiles.REPO_ROOT / "notebooks" / "01_cett.py"
    got = profiles.profile_for_notebook("smoke", nb, mine)
    assert got["MODEL_ID"] == "gpt2" and got["N_PROMPTS"] == 8 and got["PROFILE"] == "smoke"
    mine.write_text("PROFILE: smoke\n")
    with pytest.raises(ValueError, match="choose it with the PROFILE setting"):
        profiles.load_overrides(mine)
    mine.write_text("- MODEL_ID\n")
    with pytest.raises(ValueError, match="expected a mapping"):
        profiles.load_overrides(mine)
    mine.write_text("N_PROMPTS: many\n")
    with pytest.raises(ValueError, match="N_PROMPTS: 'many' has type str"):
        profiles.load_overrides(mine)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        profiles.load_overrides(tmp_path / "nosuch.yaml")


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


def test_check_parameters_stops_a_list_given_as_text():
    """What papermill -p makes of a list (a string) is caught by name in the chapter's first code
    cell; the defaults, and an int for a float, pass; names of other chapters are ignored."""
    nb = profiles.REPO_ROOT / "notebooks" / "04_behaviour.py"
    values = {**parameters_of(nb), "SOMETHING_ELSE": "x"}
    profiles.check_parameters("04_behaviour", values)
    profiles.check_parameters("04_behaviour", {**values, "ALPHAS": [0, 1, 3]})
    with pytest.raises(TypeError, match=r"ALPHAS: '\[0, 1\]' has type str.*-y or -f"):
        profiles.check_parameters("04_behaviour", {**values, "ALPHAS": "[0, 1]"})


def test_every_chapter_checks_its_parameters_first():
    """Each notebook calls check_parameters with its own name in the cell after its parameters."""
    for nb in NOTEBOOKS:
        cells = re.split(r"^# %%", nb.read_text(), flags=re.M)
        i = next(i for i, c in enumerate(cells) if c.startswith(' tags=["parameters"]'))
        assert f'profiles.check_parameters("{nb.stem}", globals())' in cells[i + 1], nb.name


def test_sources_hold_no_control_characters():
    """A stray control character (a "\\a" written without a raw string turns "\\alpha" into a
    bell and "lpha") renders as garbage in the book: none in any page, chapter or module."""
    paths = [*REPO_ROOT.glob("book/*.md"), *REPO_ROOT.glob("notebooks/*.py"),
             *REPO_ROOT.glob("hneurons_utils/*.py"), REPO_ROOT / "README.md"]
    assert len(paths) > 20
    bad = {p.name: sorted({hex(ord(c)) for c in p.read_text() if ord(c) < 32 and c not in "\n\t"})
           for p in paths}
    assert not {k: v for k, v in bad.items() if v}


def test_record_environment_lists_each_environment_once(tmp_path, tiny_model, monkeypatch):
    """environment.json holds every environment that wrote into a folder, once each, oldest
    first; a resumed run elsewhere adds one; a file that is no such list is refused."""
    import json

    import torch

    env = profiles.environment(tiny_model)
    assert torch.__version__.startswith(env["packages"]["torch"])  # "2.13.0" of "2.13.0+cpu"
    assert env["cpu_kernels"] == torch.backends.cpu.get_cpu_capability()
    assert env["model_runs_on"] == "cpu, float32" and env["torch_threads"] == torch.get_num_threads()
    assert profiles.environment(tiny_model) == env  # nothing that changes between two calls
    assert "model_runs_on" not in profiles.environment()
    assert profiles.record_environment(tmp_path, tiny_model) == [env]
    assert profiles.record_environment(tmp_path, tiny_model) == [env]  # the same run again: no entry
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "OTHER")
    both = profiles.record_environment(tmp_path, tiny_model)
    assert [e["cpu_kernels"] for e in both] == [env["cpu_kernels"], "OTHER"]
    assert json.loads((tmp_path / "environment.json").read_text()) == both
    line = profiles.describe_environment(both[1])
    assert "(OTHER kernels" in line and f"torch {env['packages']['torch']}" in line and "model on cpu, float32" in line
    (tmp_path / "environment.json").write_text('{"processor": "x"}')
    with pytest.raises(ValueError, match="expected a list of environments"):
        profiles.record_environment(tmp_path)
    (tmp_path / "environment.json").write_text('[{"processor": "x"}')  # cut off mid-write
    with pytest.raises(ValueError, match=r"environment.json: not valid JSON \(.*\); move the file aside"):
        profiles.record_environment(tmp_path)
