"""Run folders and the files recbench writes: never through a symbolic link planted where a file goes
(the file it points to is left as it was), and a resumed run's record is named so the leaderboard reads it."""

import json
import os
import shutil
from pathlib import Path

import pytest

from recbench import atomic, paths, run_folders, runner, train
from recbench.errors import UsageError
from recbench.results import records

TINY = {"n_embd": "16", "n_layer": "1", "epochs": "2", "eval_start_epoch": "1", "batch_size": "512"}
TINY_ARGS = ("--plugin", "sasrec", "--dataset", "ml-100k", "--device", "cpu", *(f"--{k}={v}" for k, v in TINY.items()))


def spec(resume=""):
    return runner.RunSpec("sasrec", "ml-100k", device="cpu", overrides=dict(TINY), resume=resume)


def unfinished_run(monkeypatch, epochs_done=1) -> Path:
    """The folder of a TINY run killed after `epochs_done` of its 2 epochs (checkpoints of that epoch,
    no record), its lock released, as `--resume` finds it."""
    from test_train import InterruptAfter

    real = train.progress_bar
    monkeypatch.setattr(train, "progress_bar", lambda console=None: InterruptAfter(epochs_done))
    with pytest.raises(KeyboardInterrupt):
        runner.run(spec())
    monkeypatch.setattr(train, "progress_bar", real)
    (folder,) = (paths.home() / "runs").iterdir()
    run_folders.release_run_folder(folder)
    return folder


def plant_link(target: Path, sentinel: Path) -> bytes:
    """Make `target` a symbolic link to `sentinel`; return the sentinel's bytes."""
    if target.exists():
        sentinel.write_bytes(target.read_bytes())  # a valid file, so that recbench goes on and writes
    else:
        sentinel.write_bytes(b"precious")
    target.unlink(missing_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(sentinel)
    return sentinel.read_bytes()


@pytest.mark.slow  # whole training runs
@pytest.mark.parametrize("name", ["run.json", "log.jsonl", "last.pt", "best.pt", "record"])
def test_resume_replaces_a_link_in_the_run_folder_and_leaves_its_target_alone(synthetic, home, monkeypatch, name):
    folder = unfinished_run(monkeypatch)
    target = paths.results_dir() / "ml-100k" / f"{folder.name}.json" if name == "record" else folder / name
    sentinel = home / "sentinel"
    before = plant_link(target, sentinel)
    record, path = runner.run(spec(resume=str(folder)))
    assert sentinel.read_bytes() == before
    assert record.train.epochs == 2 and path == paths.results_dir() / "ml-100k" / f"{folder.name}.json"
    assert not target.is_symlink() and target.is_file()  # recbench's own file took the link's place
    if name == "log.jsonl":
        assert [json.loads(line)["epoch"] for line in target.read_text().splitlines()] == [1, 2]


@pytest.mark.slow  # whole training runs
def test_resume_refuses_a_lock_that_is_a_link(synthetic, home, monkeypatch):
    folder = unfinished_run(monkeypatch)
    before = plant_link(folder / "lock", home / "sentinel")
    with pytest.raises(UsageError, match=f"Run folder lock '{folder / 'lock'}' is a symbolic link"):
        runner.run(spec(resume=str(folder)))
    assert (home / "sentinel").read_bytes() == before


def test_a_lock_that_is_not_a_regular_file_is_refused_without_waiting(tmp_path):
    os.mkfifo(tmp_path / "lock")  # recbench would write its process id into the pipe
    with pytest.raises(UsageError, match="is not a regular file"):
        run_folders.lock_run_folder(tmp_path)


@pytest.mark.slow  # whole training runs
def test_a_normal_run_replaces_a_link_where_its_record_goes(synthetic, home, monkeypatch):
    fixed = "ml-100k__sasrec__s0__fixed"
    monkeypatch.setattr(records, "run_id", lambda generator, dataset, seed: fixed)
    target = home / "home" / "results" / "ml-100k" / f"{fixed}.json"
    before = plant_link(target, home / "sentinel")
    _, path = runner.run(spec())
    assert path == target and not target.is_symlink() and (home / "sentinel").read_bytes() == before
    assert records.load(path).run_id == fixed


def test_a_temporary_name_already_taken_by_a_link_is_passed_over(tmp_path, monkeypatch):
    """The temporary sibling is created by the write itself: a link planted under the name it draws
    (here: forced) is neither written through nor removed while its process (here: this one) lives."""
    target = tmp_path / "out.json"
    sentinel = tmp_path / "sentinel"
    sentinel.write_text("precious")
    planted = target.with_name(f".{target.name}{atomic.TMP}{os.getpid()}-0badc0de")
    planted.symlink_to(sentinel)
    names = iter(["0badc0de"])
    real = atomic.secrets.token_hex
    monkeypatch.setattr(atomic.secrets, "token_hex", lambda n: next(names, None) or real(n))
    with atomic.replacing(target) as tmp:
        assert tmp != planted and not tmp.is_symlink()
        tmp.write_text("new")
    assert target.read_text() == "new" and sentinel.read_text() == "precious" and planted.is_symlink()


def test_a_leftover_link_of_a_killed_write_is_removed_not_followed(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "file").write_text("precious")
    target = tmp_path / "prepared"
    leftover = target.with_name(f".{target.name}{atomic.TMP}{dead}-00000000")
    leftover.symlink_to(kept, target_is_directory=True)
    with atomic.replacing(target, folder=True) as tmp:
        (tmp / "meta.json").write_text("{}")
    assert not os.path.lexists(leftover) and (kept / "file").read_text() == "precious"
    assert (target / "meta.json").is_file()


def test_a_log_that_became_a_link_is_not_appended_through(tmp_path):
    sentinel, log = tmp_path / "sentinel", tmp_path / "log.jsonl"
    sentinel.write_text("precious\n")
    log.symlink_to(sentinel)
    with pytest.raises(UsageError, match=f"Cannot write '{log}': it is a symbolic link"):
        with atomic.appending(log) as f:
            f.write("{}\n")
    assert sentinel.read_text() == "precious\n"


@pytest.mark.slow  # whole training runs
def test_a_run_folder_resumed_from_elsewhere_gets_a_record_the_leaderboard_reads(synthetic, home, monkeypatch, tmp_path):
    folder = unfinished_run(monkeypatch)
    elsewhere = tmp_path / "elsewhere" / ".hidden"
    elsewhere.parent.mkdir()
    shutil.move(folder, elsewhere)
    monkeypatch.chdir(tmp_path)
    record, path = runner.run(spec(resume="elsewhere/.hidden"))
    assert not path.name.startswith(".") and record.run_id.startswith("ml-100k__sasrec__s0__")
    assert list(records.find([paths.results_dir()])) == [path]  # the leaderboard's reader sees it
    assert record.checkpoints.best == str(elsewhere / "best.pt")  # the record names the folder, absolute
    assert record.run_control.resume == "elsewhere/.hidden"


def test_the_run_id_of_a_resumed_folder(tmp_path):
    runs = tmp_path / "runs"
    assert runner.resumed_run_id(runs / "ml-100k__pop__s0__1", runs, "new") == "ml-100k__pop__s0__1"
    assert runner.resumed_run_id(runs / ".hidden", runs, "new") == "new"
    assert runner.resumed_run_id(tmp_path / "elsewhere" / "ml-100k__pop__s0__1", runs, "new") == "new"
    with pytest.raises(UsageError, match="Record run_id '.hidden'"):
        records.write({"run_id": ".hidden", "dataset": {"name": "ml-100k"}}, tmp_path)
