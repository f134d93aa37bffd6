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
