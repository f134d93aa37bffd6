"""Resolving a plugin's name or config imports no torch (about 3 s of CPU a process): recbench.api and
the built-in plugin modules are torch-free, and each network is imported by its generator's build()
(a tokenizer's fit()) from recbench_plugins.models. Each check runs in a fresh interpreter, where
sys.modules holds only what the check itself imported."""

import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest


def run_python(code: str, env: dict[str, str]) -> dict:
    """Run `code` in a fresh interpreter; it prints one JSON line last, which is returned."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def env(home):
    """The test's own RECBENCH_HOME, built-in plugins only (a third-party one may import what it likes)."""
    return {**os.environ, "RECBENCH_NO_PLUGINS": "1"}


def test_loading_the_registry_and_reading_every_config_and_preset_imports_no_torch(env):
    out = run_python("""
        import dataclasses, json, sys
        from recbench import config as cfg
        from recbench import registry

        r = registry.registry()
        assert not r.failures, [f.error for f in r.failures]
        names = {}
        for kind in ("generator", "tokenizer"):
            names[kind] = r.names(kind)
            for name in r.names(kind):
                obj = r.get(kind, name)
                fields = [f.name for f in dataclasses.fields(obj.Config)]
                cfg.describe(obj.Config)
                layers = [("defaults", {})]
                if kind == "generator":
                    dict(obj.presets), dict(obj.named_presets), dict(obj.option_aliases)
                    layers += [(f"preset {k}", v) for k, v in obj.named_presets.items()]
                    # a generator's presets may carry embedding keys: resolve only its own section's
                    layers = [(o, {k: v for k, v in layer.items() if k in fields}) for o, layer in layers]
                cfg.from_layers({kind: obj.Config}, layers)  # defaults, checked ranges, validate()
        print(json.dumps({"torch": "torch" in sys.modules, "names": names}))
    """, env)
    assert not out["torch"]
    assert {"pop", "sasrec", "hstu", "llama_rec", "diff_grm", "ar_grm", "rpg", "tiger"} <= set(out["names"]["generator"])
    assert {"pq", "opq", "rq", "rqvae"} <= set(out["names"]["tokenizer"])


RECORDS = str(Path(__file__).resolve().parents[1] / "leaderboards" / "records")


@pytest.mark.parametrize("args", [["plugins"], ["plugins", "--json"], ["config", "diff_grm"], ["config", "rqvae", "--json"],
                                  ["leaderboard", "--results", RECORDS, "--dataset", "ml-100k"]],  # records upgraded, rows made
                         ids=lambda args: " ".join(args[:2]))
def test_the_plugins_and_config_commands_import_no_torch(env, args):
    out = run_python(f"""
        import json, sys
        from recbench.cli import main

        sys.argv = ["recbench", *{args!r}]
        try:
            main()
        except SystemExit as exc:
            assert not exc.code, exc.code
        print()
        print(json.dumps({{"torch": "torch" in sys.modules}}))
    """, env)
    assert not out["torch"]


def test_recommender_is_still_importable_from_the_api(env):
    """The plugin contract: `from recbench.api import Recommender` (and Batch, Split) work as before,
    importing torch only then."""
    out = run_python("""
        import json, sys
        import recbench.api
        before = "torch" in sys.modules
        from recbench.api import Batch, Recommender, Split
        import recbench.data
        import recbench.recommender
        from recbench.data import split
        print(json.dumps({"before": before, "after": "torch" in sys.modules,
                          "same": Recommender is recbench.recommender.Recommender,
                          "batch": Batch is split.Batch is recbench.data.Batch, "split": Split is split.Split is recbench.data.Split,
                          "module": Recommender.__module__}))
    """, env)
    assert out == {"before": False, "after": True, "same": True, "batch": True, "split": True, "module": "recbench.recommender"}


def test_an_unknown_name_of_the_api_is_still_an_attribute_error():
    import recbench.api

    with pytest.raises(AttributeError, match="Recommenders"):
        recbench.api.Recommenders  # noqa: B018


SMALL = {"pop": {}, "sasrec": {"n_embd": 8, "n_head": 2}, "hstu": {"n_embd": 8, "n_head": 2},
         "llama_rec": {"n_embd": 8, "n_head": 2},
         "diff_grm": {"n_digit": 3, "n_embd": 8, "n_head": 2, "n_inner": 16, "beam_size_val": 4, "beam_size_test": 4},
         "ar_grm": {"n_digit": 3, "n_embd": 8, "n_head": 2, "n_inner": 16, "beam_size_val": 4, "beam_size_test": 4},
         "tiger": {"n_digit": 3, "n_embd": 8, "n_head": 2, "head_dim": 4, "n_inner": 16, "user_buckets": 10},
         "rpg": {"n_digit": 3, "n_embd": 8, "n_head": 2, "n_inner": 16, "num_beams": 4, "n_edges": 4}}


@pytest.mark.parametrize("name", SMALL)
def test_build_returns_the_network_of_the_models_package(name):
    """build() imports its network from recbench_plugins.models (TIGER's is AR_GRM's network with its own encoder)."""
    import numpy as np

    from recbench import registry
    from recbench.api import Recommender

    entry = registry.registry().entry("generator", name)
    split = types.SimpleNamespace(n_items=20, max_seq_len=6, has_timestamps=False)
    codes = np.zeros((21, 3), dtype=np.int64)
    codes[1:] = np.stack(np.unravel_index(np.arange(20), (4, 4, 4)), 1)  # 20 distinct IDs of 3 digits of 4 codes
    sids = types.SimpleNamespace(codes=codes, n_digit=3, codebook_size=4)
    kwargs = {"semantic_ids": sids} if entry.obj.inputs == "semantic_ids" else {}
    model = entry.obj.build(entry.obj.Config(**SMALL[name]), split, **kwargs)
    assert isinstance(model, Recommender)
    module = "ar_grm" if name == "tiger" else name
    assert type(model).__module__ == f"recbench_plugins.models.{module}"
