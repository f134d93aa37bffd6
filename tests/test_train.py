"""The core trainer: resume equals an uninterrupted run, divergence stops cleanly, eval-only, Ctrl-C and
--resume say where the run is."""

import contextlib
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import threading

import pytest
import torch

from recbench import checkpoints, interrupt, run_folders, runner, train
from recbench import registry as plugin_registry
from recbench.api import Recommender, TrainConfig
from recbench.data import Split, prepare
from recbench.errors import RunError, UsageError
from recbench.results import leaderboard, records

TINY = {"n_embd": "16", "n_head": "1", "n_layer": "1", "max_seq_len": "20", "epochs": "4", "batch_size": "256",
        "eval_every": "1", "eval_start_epoch": "1", "patience": "20", "dropout": "0.1"}


def spec(results, resume="", eval_only=False, checkpoint=None, **extra):
    return runner.RunSpec("sasrec", "ml-100k", seed=3, device="cpu", overrides={**TINY, **extra}, results_dir=results,
                          resume=resume, eval_only=eval_only, checkpoint=checkpoint)


class InterruptAfter:
    """Stands in for the progress display; raises KeyboardInterrupt (a kill) after `epochs` epochs."""

    def __init__(self, epochs):
        self.epochs = epochs

    def add_task(self, *a, **k):
        return 0

    def update(self, task, completed=None, **fields):
        if completed is not None and completed >= self.epochs:
            raise KeyboardInterrupt

    def advance(self, task, n=1):
        pass

    def remove_task(self, task):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.slow  # whole training runs, interrupted and resumed
def test_resume_after_a_kill_gives_the_uninterrupted_result(synthetic, home, monkeypatch):
    straight, _ = runner.run(spec(home / "a"))
    monkeypatch.setattr(train, "progress_bar", lambda console=None: InterruptAfter(2))
    with pytest.raises(interrupt.Interrupted) as killed:  # a KeyboardInterrupt that knows what last.pt holds
        runner.run(spec(home / "b"))
    assert (killed.value.reached.epoch, killed.value.reached.epochs, killed.value.reached.trained) == (2, 4, False)
    monkeypatch.setattr(train, "progress_bar", lambda console=None: contextlib.nullcontext())
    said = []
    resumed, path = runner.run(spec(home / "b", resume="true"), log=said.append)
    assert f"--resume: continuing the run in {killed.value.reached.folder}" in said
    assert any("Its last checkpoint (last.pt) holds epoch 2 of 4; best validation ndcg@10 so far = " in s
               and s.endswith("Training continues with epoch 3.") for s in said)
    assert resumed.train.epochs == 4
    assert resumed.metrics.test == straight.metrics.test and resumed.metrics.valid == straight.metrics.valid
    assert resumed.config_fingerprint == straight.config_fingerprint
    said.clear()  # the finished run is not resumed again: there is nothing to resume, and a new run starts
    again = spec(home / "b", resume="true")
    _, folder = runner.run_folder(again, runner.resolve(again), log=said.append)
    assert folder != killed.value.reached.folder and [f.name for f in folder.iterdir()] == ["run.json"]  # a new one
    assert said == [f"--resume: nothing to resume (no unfinished run of sasrec on ml-100k with this config and seed 3 under "
                    f"{home / 'home' / 'runs'}); starting a new run."]


def test_a_run_folder_fingerprinted_before_fingerprints_hashed_the_whole_config_is_still_resumed(home):
    """run.json and last.pt of a run started before fingerprints hashed the whole config hold a
    fingerprint of the earlier scheme (records.fingerprint_before_full_config): --resume still finds
    the folder and accepts its checkpoint; another config's is still refused."""
    wanted = spec(home / "r", resume="true")
    resolved = runner.resolve(wanted)
    config, new = runner.resolved_config(resolved), runner.config_fingerprint(resolved)
    old = records.fingerprint_before_full_config(config)
    assert old != new
    folder = home / "home" / "runs" / "ml-100k__sasrec__s3__20260101T000000000"
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"generator": "sasrec", "dataset": "ml-100k", "config_fingerprint": old, "seed": 3}))
    said = []
    assert runner.run_folder(wanted, resolved, log=said.append) == (folder.name, folder)
    assert said == [f"--resume: continuing the run in {folder} (no epoch of it was saved: training starts at epoch 1)"]
    meta = runner.checkpoint_meta(wanted, resolved)
    assert meta["config_fingerprint"] == new
    train.check_same_run({**meta, "config_fingerprint": old}, meta, folder / "last.pt", "Start over")
    with pytest.raises(UsageError, match="was written by another run"):
        train.check_same_run({**meta, "config_fingerprint": "0" * 12}, meta, folder / "last.pt", "Start over")
    (folder / "run.json").write_text(json.dumps({"generator": "sasrec", "dataset": "ml-100k", "config_fingerprint": "0" * 12, "seed": 3}))
    with pytest.raises(UsageError, match="not an unfinished run folder"):
        runner.run_folder(spec(home / "r", resume=str(folder)), resolved)


@pytest.mark.slow  # whole training runs, interrupted and resumed
def test_resume_with_length_bucketed_batches_gives_the_uninterrupted_result(synthetic, home, monkeypatch):
    """bucket_pool > 0: each epoch's bucketed batches depend on (seed, epoch) only, so a resumed run
    trains on the same batches; the scheduler's step count is the real number of batches."""
    bucketed = {"bucket_pool": "4", "train_sliding": "true", "batch_size": "1024", "epochs": "3"}
    straight, _ = runner.run(spec(home / "a", **bucketed))
    monkeypatch.setattr(train, "progress_bar", lambda console=None: InterruptAfter(1))
    with pytest.raises(KeyboardInterrupt):
        runner.run(spec(home / "b", **bucketed))
    monkeypatch.setattr(train, "progress_bar", lambda console=None: contextlib.nullcontext())
    resumed, _ = runner.run(spec(home / "b", resume="true", **bucketed))
    assert resumed.train.epochs == 3
    assert resumed.metrics.test == straight.metrics.test
    assert resumed.config_fingerprint == straight.config_fingerprint
    last = checkpoints.load(straight.checkpoints.last, "cpu", ("scheduler",), "")
    ds = plugin_registry.load(third_party=False).get("dataset", "ml-100k")
    users, _ = Split(prepare(ds, ds.Config()), 20).train_positions(sliding=True)
    assert last["scheduler"]["last_epoch"] == 3 * math.ceil(len(users) / 1024)  # the optimizer steps taken
    with pytest.raises(UsageError, match="'bucket_pool' must be >= 0"):
        runner.run(spec(home / "c", bucket_pool="-1"))


@pytest.mark.slow  # whole training runs, interrupted and resumed
def test_checkpoints_log_and_eval_only(synthetic, home):
    record, _ = runner.run(spec(home / "r"))
    ckpt = record.checkpoints
    log = [json.loads(line) for line in open(ckpt.log)]
    assert [e["epoch"] for e in log] == [1, 2, 3, 4] and all("valid" in e for e in log)
    assert record.train.best_epoch in (1, 2, 3, 4)
    assert record.setting.startswith("n_embd=16, n_head=1") and record.config_origins["generator"]["n_embd"] == "command line"
    again, _ = runner.run(spec(home / "r", eval_only=True, checkpoint=ckpt.best))
    assert again.metrics.test == record.metrics.test and again.metrics.valid == record.metrics.valid
    assert again.run_control == records.RunControl(eval_only=True, checkpoint=ckpt.best)
    # the checkpoint alone names the generator, the dataset and every config value
    alone, _ = runner.run(runner.RunSpec(None, None, device="cpu", results_dir=home / "r", eval_only=True, checkpoint=ckpt.best))
    assert alone.metrics.test == record.metrics.test and alone.config == record.config
    assert alone.config_fingerprint == record.config_fingerprint and alone.seed == record.seed == 3
    with pytest.raises(UsageError, match="checkpoint .* was trained with generator 'sasrec'"):
        runner.run(runner.RunSpec("hstu", None, device="cpu", eval_only=True, checkpoint=ckpt.best))
    # an evaluation setting may differ from the checkpoint's: recorded as such, in a row of its own
    wide, _ = runner.run(runner.RunSpec(None, None, device="cpu", results_dir=home / "r", eval_only=True, checkpoint=ckpt.best,
                                        overrides={"eval_batch_size": "64"}))
    assert wide.metrics.test == record.metrics.test and wide.seed == 3 and wide.config_fingerprint != record.config_fingerprint
    assert wide.setting == f"{record.setting}; evaluated with eval_batch_size=64"
    assert wide.config_origins["generator"]["eval_batch_size"] == "command line, evaluation only"
    rows = leaderboard.collect([home / "r"])["ml-100k"]
    assert sorted(r.setting() for r in rows) == sorted([record.setting, wide.setting])
    # a checkpoint from before checkpoints carried their label: the run folder's record gives it
    older = torch.load(ckpt.best, weights_only=True)
    del older["run"]["setting"]
    torch.save(older, ckpt.best)
    label, _ = runner.run(runner.RunSpec(None, None, device="cpu", results_dir=home / "s", eval_only=True, checkpoint=ckpt.best))
    assert label.setting == record.setting
    with pytest.raises(UsageError, match="cannot be read"):
        runner.run(spec(home / "r", eval_only=True, checkpoint=ckpt.log))
    with pytest.raises(UsageError, match="needs --checkpoint"):
        runner.run(spec(home / "r", eval_only=True))


def test_the_record_keeps_the_trainers_validation_of_the_best_epoch(synthetic, home, monkeypatch):
    """The trainer ranked the validation users with the best weights already: the record keeps that
    ranking, equal to a fresh one of best.pt, instead of ranking them again. Where the best epoch was
    not validated in this process (eval-only, a resumed run whose training had ended), they are ranked."""
    ranked, real = [], runner.evaluate

    def counted(model, split, part, **kw):
        ranked.append(part)
        return real(model, split, part, **kw)
    monkeypatch.setattr(runner, "evaluate", counted)
    record, _ = runner.run(spec(home / "r"))
    assert ranked == ["test"]
    fresh, _ = runner.run(spec(home / "r", eval_only=True, checkpoint=record.checkpoints.best))
    assert ranked == ["test", "valid", "test"] and fresh.metrics.valid == record.metrics.valid
    ranked.clear()  # a run too short for its validation schedule is validated at its end, and that is kept too
    short, _ = runner.run(spec(home / "s", eval_start_epoch="20", epochs="2"))
    assert ranked == ["test"] and short.train.best_epoch == 2

    def killed_in_test(model, split, part, **kw):
        if part == "test":
            raise KeyboardInterrupt
        return real(model, split, part, **kw)
    monkeypatch.setattr(runner, "evaluate", killed_in_test)
    with pytest.raises(interrupt.Interrupted):
        runner.run(spec(home / "t"))
    monkeypatch.setattr(runner, "evaluate", counted)
    ranked.clear()
    resumed, _ = runner.run(spec(home / "t", resume="true"))
    assert ranked == ["valid", "test"] and resumed.metrics == record.metrics


def test_a_checkpoint_holds_tensors_and_plain_data_only(synthetic, home):
    record, _ = runner.run(spec(home / "r", epochs="1"))
    for path in (record.checkpoints.best, record.checkpoints.last):
        assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []
        ckpt = torch.load(path, weights_only=True)  # torch's restricted unpickler builds it all
        assert ckpt["format"] == checkpoints.FORMAT and ckpt["run"]["seed"] == 3 and ckpt["run"]["setting"] == record.setting
    numpy_state = ckpt["rng"][0]["numpy"]
    assert numpy_state["bit_generator"] == "MT19937" and len(numpy_state["key"]) == 624
    assert all(type(k) is int for k in numpy_state["key"])


def as_written_before(path):
    """Rewrite a checkpoint in the form earlier recbench versions wrote: the random states as
    random.getstate() and np.random.get_state() return them (an ndarray), pickled in full."""
    import numpy as np

    ckpt = checkpoints.load(path, "cpu", ("model",), "")
    del ckpt["format"]
    for state in ckpt.get("rng", []):
        py, npy = state["python"], state["numpy"]
        state["python"] = (py["version"], tuple(py["state"]), py["gauss_next"])
        state["numpy"] = (npy["bit_generator"], np.array(npy["key"], dtype=np.uint32), npy["pos"], npy["has_gauss"], npy["cached_gaussian"])
    torch.save(ckpt, path)


def test_a_checkpoint_of_an_earlier_version_is_refused_and_once_converted_resumes_to_the_uninterrupted_result(synthetic, home, monkeypatch):
    straight, _ = runner.run(spec(home / "a"))
    monkeypatch.setattr(train, "progress_bar", lambda console=None: InterruptAfter(2))
    with pytest.raises(KeyboardInterrupt):
        runner.run(spec(home / "b"))
    monkeypatch.setattr(train, "progress_bar", lambda console=None: contextlib.nullcontext())
    (run_dir,) = [d for d in (home / "home" / "runs").iterdir() if "record" not in json.loads((d / "run.json").read_text())]
    run_folders.release_run_folder(run_dir)
    last = run_dir / "last.pt"
    as_written_before(last)
    with pytest.raises(UsageError) as err:
        runner.run(spec(home / "b", resume="true"))
    assert f"Checkpoint '{last}' holds Python objects beyond tensors and plain data (numpy." in str(err.value)
    assert f"`recbench checkpoint convert {last}`" in str(err.value)
    said = []
    assert checkpoints.convert(last, log=said.append) == last
    assert "full unpickling" in said[0] and "weights_only=False" in said[0] and (run_dir / "last.pt.orig").is_file()
    resumed, _ = runner.run(spec(home / "b", resume="true"))
    assert resumed.train.epochs == 4 and resumed.metrics.test == straight.metrics.test
    assert checkpoints.convert(run_dir / "last.pt", log=said.append) is None and "nothing to convert" in said[-1]


def test_an_evaluation_setting_may_differ_from_the_checkpoint_and_lands_in_a_row_of_its_own(home, tmp_path):
    """Evaluating a trained DIFF_GRM at another test beam is one of its uses: the record holds the
    checkpoint's config with the beam used, a new fingerprint, and a setting label that says so.
    Any setting that changes what is trained must agree with the checkpoint."""
    from recbench_plugins.ar_grm import ARGRMConfig
    from recbench_plugins.diff_grm import DiffGRMConfig
    from recbench_plugins.rpg import RPGConfig
    from recbench_plugins.tiger import TIGERConfig

    for config in (DiffGRMConfig, ARGRMConfig, TIGERConfig):
        assert {"beam_size_val", "beam_size_test", "eval_batch_size"} <= set(config.evaluation_keys)
    assert {"num_beams", "n_edges", "propagation_steps", "graph_seed", "decoding"} <= set(RPGConfig.evaluation_keys)
    assert not {"n_embd", "lr", "dropout", "epochs"} & {k for c in (DiffGRMConfig, ARGRMConfig, TIGERConfig, RPGConfig) for k in c.evaluation_keys}
    trained_spec = runner.RunSpec("diff_grm", "beauty", preset="cpu", seed=2, device="cpu", overrides={"epochs": "4"})
    trained = runner.resolve(trained_spec)
    path = tmp_path / "best.pt"
    checkpoints.save({"model": {}, "run": runner.checkpoint_meta(trained.spec, trained)}, path)
    evaluated = runner.resolve_checkpoint(runner.RunSpec(None, None, device="cpu", eval_only=True, checkpoint=str(path),
                                                         overrides={"beam_size_test": "64", "epochs": "4"}))
    assert evaluated.spec.seed == 2 and evaluated.configs["generator"].beam_size_test == 64
    assert {k: v for k, v in vars(evaluated.configs["generator"]).items() if k != "beam_size_test"} == \
        {k: v for k, v in vars(trained.configs["generator"]).items() if k != "beam_size_test"}
    assert runner.config_fingerprint(evaluated) != runner.config_fingerprint(trained)
    assert evaluated.setting == "preset cpu, epochs=4; evaluated with beam_size_test=64"
    assert evaluated.origins[("generator", "beam_size_test")] == "command line, evaluation only"
    eval_only = dict(device="cpu", eval_only=True, checkpoint=str(path))
    with pytest.raises(UsageError, match=r"--dropout=0.3: checkpoint .* was trained with dropout=0.1.*Leave dropout out; only evaluation settings"):
        runner.resolve_checkpoint(runner.RunSpec(None, None, overrides={"dropout": "0.3"}, **eval_only))
    with pytest.raises(UsageError, match=r"epochs=\d+ \(from preset diff_grm:cpu\): checkpoint .* was trained with epochs=4"):
        runner.resolve_checkpoint(runner.RunSpec(None, None, preset="cpu", **eval_only))  # the preset's epochs, not the run's
    with pytest.raises(UsageError, match="--seed 0: checkpoint .* was trained with seed 2"):
        runner.resolve_checkpoint(runner.RunSpec(None, None, seed=0, **eval_only))
    with pytest.raises(UsageError, match="--resume=true and --eval_only=true exclude each other"):
        runner.resolve_checkpoint(runner.RunSpec(None, None, resume="true", **eval_only))


def test_validation_schedule_and_a_run_too_short_for_it(synthetic, home):
    """Validation from eval_start_epoch every eval_every epochs; a run that ends first is validated once, at its end."""
    record, _ = runner.run(spec(home / "r", eval_start_epoch="2", eval_every="2"))
    log = [json.loads(line) for line in open(record.checkpoints.log)]
    assert [e["epoch"] for e in log if "valid" in e] == [2, 4]
    short, _ = runner.run(spec(home / "s", eval_start_epoch="20", epochs="3"))
    log = [json.loads(line) for line in open(short.checkpoints.log)]
    assert [e["epoch"] for e in log if "valid" in e] == [3] and short.train.best_epoch == 3


def test_divergence_stops_with_a_message_and_keeps_the_last_good_checkpoint(synthetic, home, monkeypatch):
    from recbench_plugins.models.sasrec import SASRec

    real_loss = SASRec.loss
    calls = {"n": 0}

    def loss(self, batch):
        calls["n"] += 1
        value = real_loss(self, batch)
        return value * float("nan") if calls["n"] > 6 else value  # 3 batches per epoch: epoch 3 diverges

    monkeypatch.setattr(SASRec, "loss", loss)
    with pytest.raises(RunError, match="diverged") as err:
        runner.run(spec(home / "r", batch_size="64"))  # 150 users
    assert "epoch 3" in str(err.value) and "last.pt" in str(err.value)
    [run_dir] = (home / "home" / "runs").iterdir()
    assert checkpoints.load(run_dir / "last.pt", "cpu", ("state",), "")["state"]["epoch"] == 2


def test_val_metric_and_schedule():
    assert train.parse_metric("0.8*ndcg@10+0.2*recall@10") == [(0.8, "ndcg@10"), (0.2, "recall@10")]
    with pytest.raises(UsageError, match="val_metric"):
        train.parse_metric("ndcg@11")
    assert train.lr_factor(0, 100, 10, "cosine") == pytest.approx(0.1)
    assert train.lr_factor(10, 100, 10, "cosine") == pytest.approx(1.0)
    assert train.lr_factor(100, 100, 10, "cosine") == pytest.approx(0.0)
    assert train.lr_factor(50, 100, 0, "constant") == 1.0


def test_lr_of_the_wrong_type_is_a_usage_error(cli):
    proc = cli("run", "-p", "sasrec", "-d", "ml-100k", "--lr=abc", check=2)
    assert "'lr' must be float" in proc.stderr


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_a_damaged_checkpoint_on_resume_names_the_file_and_what_to_do(synthetic, home, monkeypatch, damage):
    monkeypatch.setattr(train, "progress_bar", lambda console=None: InterruptAfter(2))
    with pytest.raises(KeyboardInterrupt):
        runner.run(spec(home / "r"))
    (run_dir,) = (home / "home" / "runs").iterdir()
    last = run_dir / "last.pt"
    last.write_bytes(b"" if damage == "empty" else last.read_bytes()[:2000])
    monkeypatch.setattr(train, "progress_bar", lambda console=None: contextlib.nullcontext())
    with pytest.raises(UsageError) as err:
        runner.run(spec(home / "r", resume="true"))
    message = str(err.value)
    assert f"Checkpoint '{last}' cannot be read" in message
    assert "Start the run over without --resume" in message and f"--checkpoint={run_dir / 'best.pt'}" in message


def test_a_kill_between_log_line_and_checkpoint_leaves_each_epoch_once_in_the_log(synthetic, home, monkeypatch):
    real_save = train.save_atomic

    def killed_at_epoch_2(obj, path):
        if path.name == "last.pt" and obj["state"]["epoch"] == 2:
            raise KeyboardInterrupt  # the epoch's log line is written, its checkpoint is not
        real_save(obj, path)

    monkeypatch.setattr(train, "save_atomic", killed_at_epoch_2)
    monkeypatch.setattr(train, "progress_bar", lambda console=None: contextlib.nullcontext())
    with pytest.raises(KeyboardInterrupt):
        runner.run(spec(home / "r"))
    (run_dir,) = (home / "home" / "runs").iterdir()
    assert [json.loads(line)["epoch"] for line in open(run_dir / "log.jsonl")] == [1, 2]
    run_folders.release_run_folder(run_dir)  # the killed process would have dropped its lock
    monkeypatch.setattr(train, "save_atomic", real_save)
    record, _ = runner.run(spec(home / "r", resume="true"))
    assert [json.loads(line)["epoch"] for line in open(record.checkpoints.log)] == [1, 2, 3, 4]


@pytest.mark.process  # the lock is held by this test's process
def test_a_second_process_resuming_the_same_run_folder_is_refused(cli, synthetic, home, monkeypatch):
    monkeypatch.setattr(train, "progress_bar", lambda console=None: InterruptAfter(1))
    with pytest.raises(KeyboardInterrupt):
        runner.run(spec(home / "r"))
    (run_dir,) = (home / "home" / "runs").iterdir()
    assert (run_dir / "lock").read_text() == f"process {os.getpid()}"  # this test process still holds it
    args = [f"--{k}={v}" for k, v in TINY.items()]
    proc = cli("run", "--plugin", "sasrec", "--dataset", "ml-100k", "--seed", "3", "--device", "cpu", *args, f"--resume={run_dir}",
               check=2)
    assert f"Run folder {run_dir} is in use by process {os.getpid()}" in proc.stderr and "Traceback" not in proc.stderr
    run_folders.release_run_folder(run_dir)


class TargetCounter(Recommender):
    """Trains nothing; remembers every (user, target) its loss is given."""

    def __init__(self, n_items):
        super().__init__()
        self.w, self.n_items, self.seen = torch.nn.Parameter(torch.zeros(1)), n_items, []

    def loss(self, batch):
        nxt = batch.next_items()
        rows = (nxt != 0).nonzero()[:, 0]
        self.seen += list(zip(batch.users[rows].tolist(), nxt[nxt != 0].tolist()))
        return self.w.square().sum()

    def score(self, batch):
        return torch.zeros(len(batch), self.n_items + 1)


@pytest.mark.parametrize("windows", [True, False])
def test_train_windows_predict_every_training_target_once_an_epoch(synthetic, home, windows):
    """One sample per user with history 5: with train_windows every training target is predicted
    exactly once an epoch (the split's count); without, users longer than 6 training items lose some."""
    ds = plugin_registry.load(third_party=False).get("dataset", "ml-100k")
    split = Split(prepare(ds, ds.Config()), 5)
    model = TargetCounter(split.n_items)
    config = TrainConfig(epochs=1, batch_size=32, train_windows=windows, eval_start_epoch=1, cpu_amp=False)
    train.train(model, split, config, home / "run", seed=0, device=torch.device("cpu"))
    starts, lengths = split.data.offsets[:-1], split.train_lengths()
    every = sorted((u, int(split.data.items[starts[u] + j])) for u in range(split.n_users) for j in range(1, lengths[u]))
    assert len(every) == split.train_targets() and (lengths > 7).any()  # some users need windows at history 5
    if windows:
        assert sorted(model.seen) == every
    else:
        assert len(model.seen) < len(every) and set(model.seen) <= set(every)


LONG = [*(f"--{k}={v}" for k, v in {**TINY, "epochs": "200", "batch_size": "8", "patience": "200"}.items())]  # 19 steps an epoch


def interrupted(args, when, timeout=300):
    """Run `recbench ARGS` (output to a pipe, a progress line at every update), send it SIGINT once a
    line holds `when`; return (exit code, output)."""
    env = {**os.environ, "RECBENCH_PROGRESS_SECONDS": "0", "COLUMNS": "200"}
    proc = subprocess.Popen([sys.executable, "-m", "recbench", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as a shell's Ctrl-C finds it
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if when in line:
                proc.send_signal(signal.SIGINT)
                break
        seen.append(proc.communicate()[0])
    finally:
        watchdog.cancel()
    return proc.returncode, "".join(seen)


def test_ctrl_c_names_the_run_folder_and_the_command_that_continues_it(synthetic, home):
    args = ["run", "--plugin", "sasrec", "--dataset", "ml-100k", "--seed", "3", "--device", "cpu", *LONG]
    code, out = interrupted(args, "epoch 1/200: loss ")
    assert code == 130, out
    lines = out.splitlines()
    first_loss = next(i for i, line in enumerate(lines) if line.startswith("epoch "))  # the first progress line
    assert "nan" not in "\n".join(lines[: first_loss + 1]).lower()  # no value is shown before it is computed
    steps = [line for line in lines[:first_loss + 40] if line.startswith("epoch 1/200: step ")]
    assert steps and steps[0].startswith("epoch 1/200: step 1/19 (5%), loss ") and "samples/s, about " in steps[0]
    assert "left in the epoch" in steps[0] and lines.index(steps[-1]) < next(i for i, s in enumerate(lines) if "epoch 1/200: loss " in s)
    assert "epoch 1/200: loss " in out and "valid ndcg@10 = " in out  # the validation metric is named
    (run_dir,) = (home / "home" / "runs").iterdir()
    saved = checkpoints.load(run_dir / "last.pt", "cpu", ("state",), "")["state"]
    held = int(re.search(r"the last checkpoint holds epoch (\d+); best validation ndcg@10 = 0\.\d{4} at epoch \d+\.", out).group(1))
    assert held == saved["epoch"] >= 1 and f"Interrupted in epoch {held + 1} of 200;" in out
    assert f"Run folder: {run_dir}\nContinue it from epoch {held + 1} with:\n" in out
    command = re.search(r"with:\n  (recbench .*)\n", out).group(1)
    assert shlex.split(command) == ["recbench", *args, f"--resume={run_dir}"]

    code, out = interrupted([*shlex.split(command)[1:]], "Training continues with epoch")
    assert code == 130, out
    best = f"{saved['best']:.4f} at epoch {saved['best_epoch']}"
    assert f"--resume: continuing the run in {run_dir}\n" in out
    assert (f"Its last checkpoint (last.pt) holds epoch {held} of 200; best validation ndcg@10 so far = {best}. "
            f"Training continues with epoch {held + 1}.") in out
    assert f"Run folder: {run_dir}\n" in out and f"--resume={run_dir}" in out

    short = ["run", "--plugin", "sasrec", "--dataset", "ml-100k", "--seed", "3", "--device", "cpu",
             *(f"--{k}={v}" for k, v in {**TINY, "epochs": "1"}.items()), "--resume"]
    out = subprocess.run([sys.executable, "-m", "recbench", *short], capture_output=True, text=True, check=True,
                         env={**os.environ, "COLUMNS": "200"}).stdout
    assert "--resume: nothing to resume (no unfinished run of sasrec on ml-100k with this config and seed 3" in out
    assert "starting a new run." in out and "Result record written to" in out
