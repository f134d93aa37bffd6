"""The CLI end to end on real data, and its errors: exit code 2 with a message that says what is valid."""


import pytest

from recbench.metrics import metric_names
from recbench.results import records


@pytest.mark.process  # as a user runs it: `python -m recbench`, end to end
def test_run_pop_writes_a_record_and_the_leaderboard_shows_it(cli, mirror, home):
    out = cli("run", "--plugin", "pop", "--dataset", "ml-100k").stdout
    for name in metric_names():
        assert name in out
    assert "valid" in out and "test" in out
    written = list((home / "home" / "results" / "ml-100k").glob("*.json"))
    assert len(written) == 1
    record = records.load(written[0])
    assert record.dataset.users == 943 and record.dataset.items == 1682
    assert record.protocol["eval_users"] == 943
    assert set(record.metrics.test) == set(metric_names())
    assert 0 < record.metrics.test["ndcg@10"] < record.metrics.test["recall@10"] < 1
    assert record.config["generator"]["max_seq_len"] == 0 and record.command.startswith("recbench run")
    assert record.environment["torch"] and record.device.type == "cpu" and record.setting == "defaults"

    table = cli("leaderboard", "--format", "markdown").stdout
    assert "| pop |" in table and f"{record.metrics.test['ndcg@10']:.4f}" in table
    csv_text = cli("leaderboard", "--format", "csv", "--dataset", "ml-100k").stdout
    assert csv_text.splitlines()[1].startswith("ml-100k,pop,")


def test_config_file_and_overrides_are_applied_and_saved(cli, mirror, home, tmp_path):
    config = tmp_path / "pop.toml"
    config.write_text("eval_batch_size = 64\n")
    cli("run", "-p", "pop", "-d", "ml-100k", "--config", str(config), "--max_seq_len=20")
    [path] = (home / "home" / "results" / "ml-100k").glob("*.json")
    saved = records.load(path).config["generator"]
    assert saved == {"max_seq_len": 20, "eval_batch_size": 64}


@pytest.mark.process  # the exit code and stderr of a real process
def test_unknown_generator_exits_2_and_lists_valid_ones(cli):
    proc = cli("run", "--plugin", "nope", "--dataset", "ml-100k", check=2)
    assert "Unknown generator 'nope'" in proc.stderr and "pop" in proc.stderr


def test_unknown_dataset_exits_2(cli):
    proc = cli("run", "--plugin", "pop", "--dataset", "ml-100", check=2)
    assert "Unknown dataset 'ml-100'" in proc.stderr and "ml-100k" in proc.stderr


def test_unknown_preset_exits_2_naming_the_generators_presets(cli):
    proc = cli("run", "--plugin", "ar_grm", "--dataset", "beauty", "--preset", "gpu", check=2)
    assert "has no preset 'gpu' (its presets: cpu;" in proc.stderr


def test_bad_value_exits_2_naming_key_and_type(cli):
    proc = cli("run", "-p", "pop", "-d", "ml-100k", "--eval_batch_size=abc", check=2)
    assert "'eval_batch_size' must be int" in proc.stderr


def test_unknown_key_exits_2_naming_valid_keys(cli):
    proc = cli("run", "-p", "pop", "-d", "ml-100k", "--n_layers=2", check=2)
    assert "Unknown config key 'n_layers'" in proc.stderr
    assert "eval_batch_size" in proc.stderr and "k_core" in proc.stderr


def test_missing_mirror_file_names_the_file_and_how_to_provide_it(cli, home, monkeypatch, tmp_path):
    empty = tmp_path / "empty-mirror"
    empty.mkdir()
    monkeypatch.setenv("RECBENCH_DATA_MIRROR", str(empty))
    proc = cli("run", "-p", "pop", "-d", "ml-100k", check=None)
    assert proc.returncode != 0
    assert "ml-100k.inter" in proc.stderr and "RECBENCH_DATA_MIRROR" in proc.stderr


def test_leaderboard_without_records_says_so(cli):
    assert "No result records" in cli("leaderboard").stdout


def test_leaderboard_rejects_unknown_format(cli):
    assert "Valid formats" in cli("leaderboard", "--format", "xml", check=2).stderr


def test_plugins_json_lists_builtins(cli):
    data = cli.json("plugins", "--json")
    kinds = {(p["kind"], p["name"]): p for p in data["plugins"]}
    assert kinds[("generator", "pop")]["package"] == "recbench"
    assert kinds[("dataset", "ml-100k")]["version"]
    diff = kinds[("generator", "diff_grm")]
    assert diff["presets"] == ["cpu", "ocn"] and "beauty" in diff["dataset_presets"]


@pytest.mark.parametrize(
    "name, counts",
    [("beauty", (22363, 12101, 198502)), ("Sports_and_Outdoors", (35598, 18357, 296337)), ("ml-100k", (943, 1682, 100000))],
)
def test_dataset_stats_match_published_counts(cli, mirror, name, counts):
    stats = cli.json("datasets", "stats", name, "--json")
    assert (stats["users"], stats["items"], stats["interactions"]) == counts


def test_dataset_stats_read_as_numbers_a_person_writes(cli, synthetic):
    """Counts with separators, shares as percentages, no float's full repr; --json keeps the exact values."""
    from recbench.cli.datasets import stat_text

    assert [stat_text(k, v) for k, v in [("density", 0.0007335227064174272), ("items_with_text", 1.0), ("items_with_text", 0.98765),
                                         ("median_seq_len", 65.0), ("median_seq_len", 6.5), ("mean_seq_len", 106.04),
                                         ("interactions", 198502), ("timestamps", False), ("fingerprint", "ab12")]] == \
        ["0.0734%", "100%", "98.8%", "65", "6.50", "106.04", "198,502", "no", "ab12"]
    stats = cli.json("datasets", "stats", "ml-100k", "--json")
    table = cli("datasets", "stats", "ml-100k").stdout
    assert f"{100 * stats['density']:.3g}%" in table and repr(stats["density"]) not in table and "yes" in table


def test_datasets_lists_where_raw_files_are(cli, mirror):
    out = cli("datasets").stdout
    assert "ml-100k" in out and "mirror" in out and "missing" in out  # ml-1m is not in the offline mirror
    cli("datasets", "prepare", "ml-100k")
    assert "yes" in cli("datasets").stdout


@pytest.mark.process  # stdout and stderr are pipes
def test_output_to_a_file_shows_progress_lines_and_whole_paths(cli, mirror, home):
    """Off a terminal (the test reads a pipe): a plain line per epoch and for evaluation, paths not wrapped."""
    proc = cli("run", "--plugin", "sasrec", "--dataset", "ml-100k", "--n_embd=16", "--epochs=2", "--eval_start_epoch=1")
    out, progress = proc.stdout, proc.stderr  # progress goes to stderr, as rich's bars do
    assert "epoch 1/2: loss " in progress and "epoch 2/2: loss " in progress and "samples/s, valid ndcg@10 = " in progress
    assert "ranking test users: 943/943 users (100%)" in progress
    (record,) = (home / "home" / "results" / "ml-100k").glob("*.json")
    assert f"Result record written to {record}" in out  # on one line, however long the path


def test_the_command_line_starts_without_torch():
    """`recbench --help`, `leaderboard` and `compare` need no torch: it is imported by the commands that train or rank."""
    import subprocess
    import sys

    code = ("import sys, recbench.cli, recbench.results.leaderboard, recbench.results.pages, recbench.results.significance; "
            "print('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_config_lists_every_key_with_type_default_range_and_comment(cli):
    from dataclasses import fields

    from recbench_plugins.diff_grm import DiffGRMConfig

    data = cli.json("config", "diff_grm", "--json")
    generator = {r["key"]: r for r in data["sections"]["generator"]}
    assert list(generator) == [f.name for f in fields(DiffGRMConfig)]
    assert generator["lr"]["default"] == 0.003 and generator["lr"]["range"] == "> 0" and generator["lr"]["type"] == "float"
    assert generator["n_inner"]["comment"] == "feed-forward width"
    assert "linear warmup" in generator["warmup_ratio"]["comment"] + generator["warmup_steps"]["comment"]
    assert generator["bucket_pool"]["comment"]  # a subclass field without comment keeps its base's
    [tokenizer] = [s for s in data["sections"] if s.startswith("tokenizer (opq")]
    assert {r["key"] for r in data["sections"][tokenizer]} >= {"n_digit", "codebook_size"}
    assert "sent_emb_model" in {r["key"] for r in data["sections"]["embedding"]}
    assert data["presets"]["--preset cpu"]["n_embd"] == 128 and "dataset beauty" in data["presets"]
    assert "what it does" in cli("config", "sasrec").stdout
    listed = cli.json("plugins", "--json")["plugins"]
    assert next(p for p in listed if p["name"] == "pq")["config"][0]["key"] == "n_digit"
    proc = cli("config", "nope", check=2)
    assert "Unknown plugin 'nope'" in proc.stderr and "diff_grm" in proc.stderr


@pytest.mark.parametrize("width", [80, 60])
def test_config_reads_as_a_list_at_80_columns(monkeypatch, width):
    """At 80 columns the five-column table left its help column a word wide: a key a line, its help
    below it, wrapped whole at the width; a wide terminal keeps the table."""
    import io

    from rich.console import Console

    from recbench.cli import config as config_command

    def output(columns: int) -> str:
        out = io.StringIO()
        monkeypatch.setattr(config_command, "console", Console(file=out, width=columns, soft_wrap=True))
        config_command.command("diff_grm", as_json=False)
        return out.getvalue()

    text = output(width)
    lines = text.splitlines()
    assert max(map(len, lines)) <= width and not any(line.endswith(" ") for line in lines)
    assert "┃" not in text and "what it does" not in text
    assert "  eval_batch_size: int = 256 (>= 1)" in lines and "      users per evaluation batch" in lines
    assert "  optimizer: one of 'adamw', 'adafactor' = 'adamw'" in lines
    assert "  --preset cpu" in lines and any(line.startswith("      n_embd=128, n_inner=512,") for line in lines)
    assert len(lines) < 200  # the table took 408 lines at 80 columns
    wide = output(200)
    assert "what it does" in wide and "users per evaluation batch" in wide


@pytest.mark.slow  # trains a model
def test_eval_only_rebuilds_the_model_from_its_checkpoint_alone(cli, synthetic, home):
    tiny = ["--n_embd=16", "--n_layer=1", "--epochs=2", "--eval_start_epoch=1", "--batch_size=64"]
    cli("run", "--plugin", "sasrec", "--dataset", "ml-100k", "--seed", "2", *tiny)
    [path] = (home / "home" / "results" / "ml-100k").glob("*.json")
    trained = records.load(path)
    best = trained.checkpoints.best
    out = cli("run", "--eval_only=true", f"--checkpoint={best}", "--results-dir", str(home / "again")).stdout
    assert "sasrec on ml-100k (seed 2)" in out
    [again] = (home / "again" / "ml-100k").glob("*.json")
    again = records.load(again)
    assert again.metrics.test == trained.metrics.test and again.config == trained.config
    assert again.run_control == records.RunControl(eval_only=True, checkpoint=best) and again.checkpoints is None
    proc = cli("run", "-p", "sasrec", "-d", "ml-100k", f"--checkpoint={best}", check=2)
    assert "--checkpoint is read by --eval_only=true only" in proc.stderr


def test_the_cli_fixture_answers_as_a_process_and_leaves_the_test_process_as_it_was(cli, monkeypatch):
    """The in-process `cli` (tests/conftest.py): stdout and stderr apart, the exit code of SystemExit,
    the test's environment during the call, and the environment and sys.argv unchanged after it."""
    import os
    import sys

    monkeypatch.setenv("RECBENCH_NO_PLUGINS", "1")
    environ, argv = dict(os.environ), list(sys.argv)
    proc = cli("run", "--plugin", "nope", "--dataset", "ml-100k", check=2)
    assert proc.returncode == 2 and proc.stdout == "" and "Unknown generator 'nope'" in proc.stderr
    assert {p["package"] for p in cli.json("plugins", "--json")["plugins"]} == {"recbench"}
    assert dict(os.environ) == environ and sys.argv == argv
