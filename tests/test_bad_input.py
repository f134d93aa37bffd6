"""Bad input ends in a clear answer: an exit code, a message that names what was wrong, never a traceback."""

import pytest

PARSER_ERRORS = [
    (("run", "--plugin", "sasrec", "--dataset", "ml-100k", "--seed", "abc"), "'--seed'"),
    (("nosuchcmd",), "No such command 'nosuchcmd'"),
    (("compare",), "Missing argument"),
    (("datasets", "prepare"), "Missing argument"),
    (("run", "--plugin", "sasrec", "--dataset", "ml-100k", "--nproc", "abc"), "'--nproc'"),
    (("tune", "--plugin", "sasrec", "--dataset", "ml-100k", "--n-trials", "abc"), "'--n-trials'"),
]


@pytest.mark.parametrize("args, message", PARSER_ERRORS, ids=[" ".join(a) for a, _ in PARSER_ERRORS])
def test_a_malformed_command_line_exits_2_with_the_parsers_message(cli, args, message):
    proc = cli(*args, check=2)
    assert "Traceback" not in proc.stderr + proc.stdout
    assert message in proc.stderr


VALUE_ERRORS = [
    (("--lr=-1",), "Config value for 'lr' must be > 0; got -1.0."),
    (("--lr=nan",), "Config value for 'lr' must be a finite number; got nan."),
    (("--dropout=1.5",), "Config value for 'dropout' must be >= 0 and < 1; got 1.5."),
    (("--n_head=3", "--n_embd=50"), "n_embd (50) must be divisible by n_head (3)"),
    (("--n_embd=0",), "Config value for 'n_embd' must be >= 1; got 0."),
    (("--eval_batch_size=0",), "Config value for 'eval_batch_size' must be >= 1; got 0."),
    (("--warmup_ratio=1",), "Config value for 'warmup_ratio' must be >= 0 and < 1; got 1.0."),
]


@pytest.mark.parametrize("args, message", VALUE_ERRORS, ids=[" ".join(a) for a, _ in VALUE_ERRORS])
def test_a_value_outside_its_range_exits_2_before_any_data_is_loaded(cli, home, args, message):
    proc = cli("run", "--plugin", "sasrec", "--dataset", "ml-100k", *args, check=2)
    assert "Traceback" not in proc.stderr + proc.stdout
    assert message in proc.stderr
    assert not (home / "home" / "runs").exists() and not (home / "data").exists()  # nothing was created


def test_a_config_file_that_is_not_utf8_names_the_file_and_line(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"lr: 0.001\ndropout: 0.2\nname: caf\xe9\n")
    proc = cli("run", "--plugin", "sasrec", "--dataset", "ml-100k", "--config", str(bad), check=2)
    assert f"Config file '{bad}', line 3: not UTF-8 text" in proc.stderr and "Traceback" not in proc.stderr


def test_ranges_are_declared_once_and_inherited():
    from recbench import config as cfg
    from recbench_plugins.diff_grm import DiffGRMConfig

    assert DiffGRMConfig.lr == 0.003 and cfg.field_range(DiffGRMConfig, "lr") == cfg.Range(gt=0)  # TrainConfig's range
    assert str(cfg.field_range(DiffGRMConfig, "dropout")) == ">= 0 and < 1"


def test_a_search_space_outside_a_fields_range_is_refused():
    from recbench import runner, tune
    from recbench.errors import UsageError

    resolved = runner.resolve(runner.RunSpec("sasrec", "ml-100k"))
    fields, ranges = tune.space_fields(resolved), tune.space_ranges(resolved)
    with pytest.raises(UsageError, match=r"key 'dropout': 1.2 is outside the field's valid range \(>= 0 and < 1\)"):
        tune.parse_space({"dropout": {"type": "float", "low": 0.1, "high": 1.2}}, fields, "test", ranges=ranges)
    with pytest.raises(UsageError, match="key 'n_layer': 0 is outside"):
        tune.parse_space({"n_layer": {"type": "categorical", "choices": [0, 1, 2]}}, fields, "test", ranges=ranges)
    assert tune.parse_space({"dropout": {"type": "float", "low": 0.0, "high": 0.9}}, fields, "test", ranges=ranges)


def flip_a_bit(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["truncated", "empty", "flipped bit"])
def test_a_corrupt_prepared_cache_is_found_and_rebuilt(cli, mirror, home, damage):
    cli("datasets", "prepare", "ml-100k")
    (arrays,) = (home / "data" / "prepared" / "ml-100k").glob("*/arrays.npz")
    prepared_rows = lambda: [ln for ln in cli("datasets").stdout.splitlines() if "ml-100k" in ln and "yes" in ln]  # noqa: E731
    assert prepared_rows()  # intact: "prepared: yes"
    if damage == "truncated":
        arrays.write_bytes(arrays.read_bytes()[:1000])
    elif damage == "empty":
        arrays.write_bytes(b"")
    else:
        flip_a_bit(arrays)
    assert prepared_rows() == []  # damaged: not "prepared: yes"
    proc = cli("datasets", "prepare", "ml-100k")
    assert "is corrupt" in proc.stdout and "rebuilding it" in proc.stdout and "Traceback" not in proc.stderr
    assert "943 users" in proc.stdout
    assert "is corrupt" not in cli("datasets", "prepare", "ml-100k").stdout  # rebuilt intact
