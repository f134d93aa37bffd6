"""Experiment trackers: one conformance suite over every registered tracker, a run's curves read back
through TensorBoard's and MLflow's own readers (and W&B's offline files) equal to the record's history, a tracker that raises
costs the run nothing but one warning, and an unknown tracker name is a usage error."""

import dataclasses
import json

import pytest
from conftest import with_example_plugins

from recbench import hookimpl, runner, trackers
from recbench import registry as plugin_registry
from recbench.api import RunInfo, Tracker, TrackerConfig, TrackerRun
from recbench.errors import UsageError
from recbench.results import records

REGISTRY = with_example_plugins()  # built-in and example-package plugins
SLOW = {"mlflow"}  # creating its SQLite store takes seconds
TRACKERS = [pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name for name in REGISTRY.names("tracker")]
TINY = {"n_embd": "16", "n_head": "1", "n_layer": "1", "max_seq_len": "20", "epochs": "3", "batch_size": "32",
        "eval_every": "1", "eval_start_epoch": "1", "patience": "20", "dropout": "0.1"}


def info(run_id="ml-100k__sasrec__s0__1"):
    return RunInfo(run_id=run_id, generator="sasrec", dataset="ml-100k", tokenizer=None, seed=0, setting="defaults", folder=None)


@pytest.mark.parametrize("name", TRACKERS)
def test_every_tracker_describes_itself_and_follows_a_run(name, home):
    entry = REGISTRY.entry("tracker", name)
    tracker = entry.obj
    assert isinstance(tracker, Tracker) and tracker.name == name and tracker.description
    assert dataclasses.is_dataclass(tracker.Config) and issubclass(tracker.Config, TrackerConfig)
    tracker.Config()  # every setting has a default: a tracker runs without configuration
    handle = tracker.start(info(), {"generator.lr": 0.001, "generator.val_metric": "ndcg@10"}, trackers.settings(entry))
    assert isinstance(handle, TrackerRun)
    handle.log_params({"seed": 0})
    handle.log_metrics({"train/loss": 1.5, "train/lr": 0.001}, 10)
    handle.log_metrics({"valid/ndcg@10": 0.25}, 1)
    where = handle.finish({"ndcg@10": 0.2}, str(home / "record.json"))
    assert where is None or (isinstance(where, dict) and all(isinstance(v, str) for v in where.values()))


def test_settings_come_from_the_environment(monkeypatch):
    entry = REGISTRY.entry("tracker", "tensorboard")
    assert trackers.settings(entry).logdir == ""
    monkeypatch.setenv("RECBENCH_TENSORBOARD_LOGDIR", "/somewhere")
    assert trackers.settings(entry).logdir == "/somewhere"


def test_names_from_the_option_else_the_environment(monkeypatch):
    monkeypatch.setenv("RECBENCH_TRACKERS", "mlflow")
    assert trackers.names(None) == ["mlflow"]
    assert trackers.names("tensorboard, mlflow,tensorboard") == ["tensorboard", "mlflow"]
    assert trackers.names("none") == [] and trackers.names("") == []


class Recorder(TrackerRun):
    def __init__(self, fail_in=None):
        self.calls, self.fail_in = [], fail_in

    def log_params(self, params):
        self.calls.append("log_params")

    def log_metrics(self, metrics, step):
        self.calls.append(("log_metrics", step))
        if self.fail_in == "log_metrics":
            raise ConnectionError("server went away")

    def finish(self, metrics, record_path):
        self.calls.append("finish")
        return {"uri": "here"}


class Raising(Tracker):
    """A third-party-style tracker that breaks: in `start`, or in every log_metrics call."""

    description = "breaks"

    def __init__(self, name, fail_in):
        self.name, self.fail_in, self.runs = name, fail_in, []

    def start(self, run, params, config):
        if self.fail_in == "start":
            raise ImportError("No module named 'missing_tracker_lib'")
        self.runs.append(Recorder(self.fail_in))
        return self.runs[-1]


class RaisingPlugin:
    def __init__(self, *trackers):
        self.trackers = trackers

    @hookimpl
    def register_trackers(self, register):
        for tracker in self.trackers:
            register(tracker)


def test_a_failing_tracker_warns_once_is_dropped_and_the_others_go_on():
    good, on_start, on_log = Raising("good", None), Raising("on_start", "start"), Raising("on_log", "log_metrics")
    registry = plugin_registry.load(third_party=False, extra=[("raising", RaisingPlugin(good, on_start, on_log), "raising-pkg", "0.1")])
    said = []
    tracking = trackers.Trackers(trackers.entries(["on_start", "good", "on_log"], registry), warn=said.append)
    tracking.every = 1
    tracking.start(info(), {"seed": 0})
    for step in range(1, 4):
        tracking.step(step, 1.0, 0.1)
    tracking.epoch({"epoch": 1, "loss": 1.0, "valid": {"ndcg@10": 0.1}})
    where = tracking.finish({"ndcg@10": 0.1}, "record.json")
    assert where == {"good": {"uri": "here"}}
    assert len(said) == 2 and "tracker 'on_start' failed in start (ImportError" in said[0]
    assert "tracker 'on_log' failed in log_metrics (ConnectionError: server went away)" in said[1]
    assert on_log.runs[0].calls == ["log_params", ("log_metrics", 1)]  # never called after its failure
    assert good.runs[0].calls == ["log_params", ("log_metrics", 1), ("log_metrics", 2), ("log_metrics", 3), ("log_metrics", 1),
                                  ("log_metrics", 1), "finish"]


def test_an_unknown_tracker_is_refused_before_any_work_listing_the_trackers(home, monkeypatch):
    spec = runner.RunSpec("pop", "ml-100k", device="cpu", trackers="tensorbord")
    with pytest.raises(UsageError, match=r"Unknown tracker 'tensorbord'\. Did you mean 'tensorboard'\? Valid trackers: mlflow, tensorboard, wandb"):
        runner.run(spec)
    monkeypatch.setenv("RECBENCH_TRACKERS", "nope")  # the environment's default is checked the same way
    with pytest.raises(UsageError, match="Unknown tracker 'nope'"):
        runner.run(runner.RunSpec("pop", "ml-100k", device="cpu"))


def test_an_unknown_tracker_exits_2(cli):
    proc = cli("run", "--plugin", "pop", "--dataset", "ml-100k", "--tracker", "nope", check=2)
    assert "Unknown tracker 'nope'" in proc.stderr and "Valid trackers: mlflow, tensorboard, wandb" in proc.stderr


def wandb_history(run_folder) -> list[dict]:
    """The `history` rows of an offline W&B run, read from its run-ID.wandb file: LevelDB-log framing
    (32 KiB blocks, a 7-byte header per chunk) around records of W&B's own protobuf schema."""
    import struct
    from pathlib import Path

    from wandb.proto import wandb_internal_pb2

    data = next(Path(run_folder).glob("run-*.wandb")).read_bytes()
    assert data[:4] == b":W&B"
    block, pos, pending, rows = 32768, 7, b"", []
    while pos + 7 <= len(data):
        left = block - pos % block
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7]) if left >= 7 else (0, 0, 0)
        if kind == 0:  # the zeros that pad a block
            pos += left
            continue
        pending, pos = pending + data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind in (1, 4):  # a whole record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            if record.WhichOneof("record_type") == "history":
                rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item})
    return rows


def tiny(results, trackers_option):
    return runner.RunSpec("sasrec", "ml-100k", seed=3, device="cpu", overrides=dict(TINY), results_dir=results, trackers=trackers_option)


@pytest.mark.slow  # trains sasrec three times on the synthetic data
def test_curves_reach_tensorboard_mlflow_and_wandb_and_equal_the_record(synthetic, home, monkeypatch, capsys):
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("RECBENCH_TRACKER_EVERY", "2")
    record, path = runner.run(tiny(home / "results", "tensorboard,mlflow,wandb"))
    history = record.train.history
    assert [e["epoch"] for e in history] == [1, 2, 3] and all({"loss", "lr", "seconds", "samples_per_s", "valid"} <= set(e) for e in history)
    assert records.load(path).to_dict() == record.to_dict()  # history and trackers are in the file
    assert json.loads(path.read_text())["train"]["history"] == history
    valid = [(e["epoch"], e["valid"]["ndcg@10"]) for e in history]

    events = EventAccumulator(record.trackers["tensorboard"]["uri"])
    events.Reload()
    assert [(s.step, s.value) for s in events.Scalars("valid/ndcg@10")] == [(step, pytest.approx(v, rel=1e-6)) for step, v in valid]
    assert [s.step for s in events.Scalars("train/loss")][:2] == [2, 4]  # every second optimizer step
    assert events.Scalars("test/ndcg@10")[0].value == pytest.approx(record.metrics.test["ndcg@10"], rel=1e-6)

    client = MlflowClient(tracking_uri=record.trackers["mlflow"]["uri"])
    run_id = record.trackers["mlflow"]["run_id"]
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "valid/ndcg_at_10")] == valid
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "epoch/loss")] == [(e["epoch"], e["loss"]) for e in history]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["recbench.record"] == str(path)
    assert run.data.params["generator.lr"] == str(record.config["generator"]["lr"])
    assert run.data.metrics["test/ndcg_at_10"] == record.metrics.test["ndcg@10"]

    rows = wandb_history(record.trackers["wandb"]["uri"])
    assert [(row["epoch"], row["valid/ndcg@10"]) for row in rows if "valid/ndcg@10" in row] == valid
    assert [row["train/step"] for row in rows if "train/loss" in row][:2] == [2, 4]
    assert [row["test/ndcg@10"] for row in rows if "test/ndcg@10" in row] == [record.metrics.test["ndcg@10"]]
    assert (home / "home" / "trackers" / "wandb").is_dir()
    capsys.readouterr()

    # the same run with a third-party tracker that raises: the same result, one warning, no record entry for it
    broken = Raising("broken", "log_metrics")
    registry = plugin_registry.load(third_party=False, extra=[("broken", RaisingPlugin(broken), "broken-pkg", "0.1")])
    monkeypatch.setattr(plugin_registry, "_registry", registry)
    again, _ = runner.run(tiny(home / "again", "broken,tensorboard"))
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning: tracker" in line]
    assert warnings == ["warning: tracker 'broken' failed in log_metrics (ConnectionError: server went away); the run goes on without it."]
    assert again.metrics.test == record.metrics.test and again.train.history[-1]["valid"] == history[-1]["valid"]
    assert set(again.trackers) == {"tensorboard"}

    # and with no tracker, the record has the curves but no `trackers`
    plain, plain_path = runner.run(tiny(home / "plain", None))
    assert plain.trackers is None and "trackers" not in json.loads(plain_path.read_text())
    assert [e["valid"] for e in plain.train.history] == [e["valid"] for e in history]


def test_an_unreachable_server_or_a_missing_library_costs_one_warning_each(home, monkeypatch):
    import sys
    import time

    monkeypatch.setenv("RECBENCH_MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens there
    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):  # the tracker's defaults, undone after
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    for module in ("tensorboard", "torch.utils.tensorboard"):  # as if the tensorboard package were not installed
        monkeypatch.setitem(sys.modules, module, None)
    said = []
    tracking = trackers.Trackers(trackers.entries(["mlflow", "tensorboard"], REGISTRY), warn=said.append)
    started = time.monotonic()
    tracking.start(info(), {"seed": 0})
    assert time.monotonic() - started < 60  # one attempt, no retries for minutes
    tracking.epoch({"epoch": 1, "loss": 1.0})
    assert tracking.finish({"ndcg@10": 0.1}, "record.json") == {}
    assert [s.split(" (")[0] for s in said] == ["warning: tracker 'mlflow' failed in start", "warning: tracker 'tensorboard' failed in start"]


def test_curves_and_trackers_are_optional_fields_of_the_record():
    from pathlib import Path

    path = sorted((Path(__file__).parents[1] / "leaderboards" / "records").glob("*/*.json"))[0]
    data = json.loads(path.read_text())
    committed = records.load(path)
    assert committed.train.history is None and committed.trackers is None  # records made before read as they were
    assert "history" not in committed.to_dict()["train"] and "trackers" not in committed.to_dict()
    history = [{"epoch": 1, "loss": 2.5, "seconds": 1.0, "samples_per_s": 100.0, "lr": 0.001, "valid": {"ndcg@10": 0.01}}]
    where = {"mlflow": {"uri": "sqlite:///x/mlflow.db", "run_id": "abc"}}
    data = {**records.upgrade(data), "train": {**data["train"], "history": history}, "trackers": where}
    again = records.Record.from_dict(data)
    assert again.train.history == history and again.trackers == where and again.to_dict() == data


@pytest.mark.slow  # a tuning study of two trials and the best trial's re-run
def test_a_tuning_study_logs_each_trial_as_a_run_grouped_under_the_study(cli, synthetic, home, tmp_path):
    from mlflow.tracking import MlflowClient

    space = tmp_path / "space.yaml"
    space.write_text("lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}\n")
    cli("tune", "-p", "sasrec", "-d", "ml-100k", "--n-trials", "2", "--space", str(space), "--sampler", "random", "--device", "cpu",
        "--tracker", "tensorboard,mlflow", *(f"--{k}={v}" for k, v in TINY.items()))
    [path] = (home / "home" / "results" / "ml-100k").glob("*.json")
    record = records.load(path)
    study = record.tune.study
    assert sorted(p.parent.name for p in (home / "home" / "trackers" / "tensorboard").glob("*/*")) == [study] * 3  # one folder per study
    client = MlflowClient(tracking_uri=record.trackers["mlflow"]["uri"])
    runs = client.search_runs([client.get_experiment_by_name("recbench").experiment_id], f"tags.`recbench.study` = '{study}'")
    assert sorted(r.data.tags.get("recbench.trial", "best") for r in runs) == ["0", "1", "best"]
    assert all(r.info.status == "FINISHED" for r in runs)
    best = next(r for r in runs if "recbench.trial" not in r.data.tags)
    assert best.info.run_id == record.trackers["mlflow"]["run_id"]
    assert "Unknown tracker 'nope'" in cli("tune", "-p", "sasrec", "-d", "ml-100k", "--tracker", "nope", check=2).stderr
