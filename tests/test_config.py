"""Typed, layered config: parsing by type, layering order, and errors that name the key."""

from dataclasses import dataclass
from typing import Literal, Optional

import pytest

from recbench import config as cfg
from recbench.errors import UsageError


@dataclass
class ModelConfig:
    lr: float = 0.001
    n_digit: int = 4
    train_sliding: bool = False
    masking_strategy: Literal["random", "sequential", "guided"] = "sequential"
    sent_emb_model: str = "all-MiniLM-L6-v2"
    warmup: Optional[int] = None
    betas: tuple[float, ...] = (0.9, 0.98)


@dataclass
class DataConfig:
    k_core: int = 0
    n_digit: int = 4  # shared with the model section: one key sets both


def test_overrides_in_the_published_styles():
    args = ["--lr=0.003", "--n_digit", "4", "--train_sliding=true", "--masking-strategy=guided", "--flag"]
    assert cfg.parse_overrides(args) == {
        "lr": "0.003", "n_digit": "4", "train_sliding": "true", "masking_strategy": "guided", "flag": "true",
    }


def test_overrides_reject_stray_arguments():
    with pytest.raises(UsageError, match="--key=value"):
        cfg.parse_overrides(["lr=0.1"])


def test_values_are_parsed_by_field_type():
    out = cfg.from_layers({"model": ModelConfig}, [("cli", cfg.parse_overrides(
        ["--lr=3e-3", "--n_digit=8", "--train_sliding=yes", "--warmup=none", "--betas=0.9,0.95"]))])
    m = out["model"]
    assert (m.lr, m.n_digit, m.train_sliding, m.warmup, m.betas) == (0.003, 8, True, None, (0.9, 0.95))


@pytest.mark.parametrize(
    "override, message",
    [
        ("--lr=abc", "'lr' must be float"),
        ("--n_digit=4.5", "'n_digit' must be int"),
        ("--train_sliding=maybe", "'train_sliding' must be bool"),
        ("--masking_strategy=greedy", "one of 'random', 'sequential', 'guided'"),
    ],
)
def test_wrong_type_names_key_and_type(override, message):
    with pytest.raises(UsageError, match=message):
        cfg.from_layers({"model": ModelConfig}, [("cli", cfg.parse_overrides([override]))])


def test_unknown_key_lists_valid_keys():
    with pytest.raises(UsageError) as err:
        cfg.from_layers({"model": ModelConfig, "data": DataConfig}, [("command line", {"learning_rate": "0.1"})])
    text = str(err.value)
    assert "learning_rate" in text and "command line" in text
    for key in ("lr", "n_digit", "k_core", "masking_strategy"):
        assert key in text


def test_unknown_key_close_to_a_known_one_gets_a_did_you_mean_and_the_valid_keys():
    with pytest.raises(UsageError) as err:
        cfg.from_layers({"model": ModelConfig, "data": DataConfig}, [("command line", cfg.parse_overrides(["--n-digits=3"]))])
    text = str(err.value)
    assert "Unknown config key 'n_digits' (from command line). Did you mean 'n_digit'?" in text
    assert "Valid keys: betas, k_core, lr, masking_strategy, n_digit," in text
    with pytest.raises(UsageError) as err:  # nothing close: no guess, the list only
        cfg.from_layers({"model": ModelConfig}, [("command line", {"zzz": "1"})])
    assert "Did you mean" not in str(err.value) and "Valid keys: betas," in str(err.value)


def test_a_key_given_without_a_value_is_a_missing_value_unless_it_is_a_boolean():
    for args in (["--lr"], ["--lr", "--n_digit=3"]):
        with pytest.raises(UsageError) as err:
            cfg.from_layers({"model": ModelConfig}, [("command line", cfg.parse_overrides(args))])
        assert str(err.value) == "--lr is given without a value: write --lr=VALUE, where VALUE is float."
    with pytest.raises(UsageError, match="--sent_emb_model is given without a value: write --sent_emb_model=VALUE, where VALUE is str"):
        cfg.from_layers({"model": ModelConfig}, [("command line", cfg.parse_overrides(["--sent_emb_model"]))])
    out = cfg.from_layers({"model": ModelConfig}, [("command line", cfg.parse_overrides(["--train_sliding", "--lr", "0.5"]))])
    assert out["model"].train_sliding is True and out["model"].lr == 0.5
    with pytest.raises(UsageError, match="'lr' must be float; got 'true'"):  # written out, 'true' is a value like any other
        cfg.from_layers({"model": ModelConfig}, [("command line", cfg.parse_overrides(["--lr=true"]))])


def test_a_bare_flag_stays_one_through_pickling():
    import pickle

    flag = cfg.parse_overrides(["--lr"])["lr"]
    again = pickle.loads(pickle.dumps(flag))
    assert isinstance(again, cfg.Flag) and again == "true"


@pytest.mark.parametrize("name, text, line", [
    ("c.toml", 'n_digit = 3\n\n# the learning rate\nlr = "fast"\n', 4),
    ("c.yaml", "n_digit: 3\nlr: fast\n", 2),
    ("c.json", '{\n  "n_digit": 3,\n  "lr": "fast"\n}\n', 3),
])
def test_a_wrong_type_in_a_config_file_names_the_file_and_the_line(tmp_path, name, text, line):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(UsageError) as err:
        cfg.from_layers({"model": ModelConfig}, [(str(path), cfg.load_file(path))])
    assert str(err.value) == f"Config file '{path}', line {line}: config value for 'lr' must be float; got 'fast'."


def test_an_unknown_key_or_a_value_out_of_range_in_a_config_file_names_the_file_and_the_line(tmp_path):
    @dataclass
    class Ranged:
        lr: float = cfg.ranged(0.1, gt=0)

    path = tmp_path / "c.toml"
    path.write_text("lr = 0.5\nlearning-rat = 2\n")
    with pytest.raises(UsageError) as err:
        cfg.from_layers({"model": Ranged}, [(str(path), cfg.load_file(path))])
    assert str(err.value) == f"Config file '{path}', line 2: unknown config key 'learning_rat'. Valid keys: lr."
    path.write_text("# a negative rate\n\nlr = -1\n")
    with pytest.raises(UsageError) as err:
        cfg.from_layers({"model": Ranged}, [(str(path), cfg.load_file(path))])
    assert str(err.value) == f"Config file '{path}', line 3: config value for 'lr' must be > 0; got -1.0."
    with pytest.raises(UsageError) as err:  # the command line over the file: the error is the command line's
        cfg.from_layers({"model": Ranged}, [(str(path), cfg.load_file(path)), ("command line", {"lr": "-2"})])
    assert str(err.value) == "Config value for 'lr' must be > 0; got -2.0."


def test_layers_apply_in_order_and_record_their_origin(tmp_path):
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("lr: 0.01\nn_digit: 3\n")
    toml_file = tmp_path / "c.toml"
    toml_file.write_text("lr = 0.02\ntrain_sliding = true\n")
    origins = {}
    out = cfg.from_layers(
        {"model": ModelConfig, "data": DataConfig},
        [
            ("preset", {"lr": 0.1, "warmup": 100}),
            (str(yaml_file), cfg.load_file(yaml_file)),
            (str(toml_file), cfg.load_file(toml_file)),
            ("command line", {"n_digit": "2"}),
        ],
        origins,
    )
    m, d = out["model"], out["data"]
    assert (m.lr, m.warmup, m.train_sliding, m.n_digit, d.n_digit) == (0.02, 100, True, 2, 2)
    assert origins[("model", "lr")] == str(toml_file)
    assert origins[("model", "warmup")] == "preset"
    assert origins[("data", "n_digit")] == "command line"
    assert ("model", "masking_strategy") not in origins


def test_config_file_errors(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        cfg.load_file(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.toml"
    bad.write_text("lr = = 1\n")
    with pytest.raises(UsageError, match="bad.toml"):
        cfg.load_file(bad)
    wrong = tmp_path / "c.yaml"
    wrong.write_text("lr: fast\n")
    with pytest.raises(UsageError, match="'lr' must be float"):
        cfg.from_layers({"model": ModelConfig}, [(str(wrong), cfg.load_file(wrong))])
