"""The digests that name stored artefacts (hneurons_utils.files): settings and code."""

import hashlib
import json
import types

from hneurons_utils import files


def test_settings_hash_is_the_keys_sorted_json_digest_every_artefact_was_named_by():
    """One function names features, samples, sweeps, tuned twins and probe fits; its value for
    given settings must not move, or every stored artefact of a user would be computed again."""
    s = {"b": [1, 2.5, None], "a": "x", "when": types.SimpleNamespace}  # the class: written as str
    blob = json.dumps({"a": "x", "b": [1, 2.5, None], "when": str(types.SimpleNamespace)}).encode()
    assert files.settings_hash(s) == hashlib.sha256(blob).hexdigest()[:16]
    assert files.settings_hash(s, 10) == files.settings_hash(s)[:10]
    assert files.settings_hash({"a": 1, "b": 2}) == files.settings_hash({"b": 2, "a": 1})
    assert files.settings_hash({"a": 1}) != files.settings_hash({"a": 1.5})
    from hneurons_utils import finetune, sampling, sweep

    assert sampling.settings_hash is files.settings_hash
    assert sweep.settings_key({"a": 1}, [2]) == files.settings_hash([{"a": 1}, [2]], 10)
    cfg = finetune.SFTConfig()
    assert len(finetune.sft_key("base", cfg, ["q"])) == 12


def test_code_digest_follows_the_source_and_falls_back_to_compiled_code():
    def f(x):
        return x + 1

    def g(x):
        return x + 2

    assert files.code_digest([f]) == files.code_digest([f]) != files.code_digest([g])
    assert files.code_digest([f, g]) != files.code_digest([g, f])
    ns: dict = {}
    exec("def h(x):\n    return x * 3\n", ns)  # no source file: its compiled code is digested
    exec("def k(x):\n    return x * 4\n", ns)
    assert files.code_digest([ns["h"]]) != files.code_digest([ns["k"]])
    mod = types.ModuleType("made_here")  # a module without source: its functions' code, by name
    exec("def h(x):\n    return x * 3\n", mod.__dict__)
    before = files.code_digest([mod])
    exec("def h(x):\n    return x * 5\n", mod.__dict__)
    assert files.code_digest([mod]) != before
    assert files.code_digest([files]) != files.code_digest([json])
