"""The built-in experiment trackers: TensorBoard, MLflow and W&B (`recbench run --tracker tensorboard,mlflow`).

Each imports its library in `start`, so that recbench runs, and lists these trackers, without it;
a run that asks for a tracker whose library is missing prints one warning and goes on without it
(recbench.trackers). Both keep their runs under RECBENCH_HOME by default, beside the results, so
that they work offline and a run's curves stay on the machine that trained it.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recbench import hookimpl, paths
from recbench.api import RunInfo, Tracker, TrackerConfig, TrackerRun


@dataclass
class TensorBoardConfig(TrackerConfig):
    logdir: str = ""  # a run's event files go to LOGDIR/RUN_ID ('': RECBENCH_HOME/trackers/tensorboard)


class TensorBoardRun(TrackerRun):
    def __init__(self, writer, logdir: Path):
        self.writer, self.logdir = writer, logdir

    def log_params(self, params: dict[str, Any]) -> None:
        rows = "\n".join(f"| {key} | {value!r} |" for key, value in params.items())
        self.writer.add_text("config", f"| key | value |\n|---|---|\n{rows}", 0)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(name, value, step)

    def finish(self, metrics: dict[str, float] | None, record_path: str | None) -> dict[str, str]:
        if record_path:
            self.writer.add_text("record", record_path, 0)
        self.writer.close()
        return {"uri": str(self.logdir)}


class TensorBoard(Tracker):
    name = "tensorboard"
    description = "TensorBoard event files (torch.utils.tensorboard), one folder per run"
    aliases = ("tb",)
    Config = TensorBoardConfig

    def start(self, run: RunInfo, params: dict[str, Any], config: TensorBoardConfig) -> TensorBoardRun:
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

        root = Path(config.logdir) if config.logdir else paths.home() / "trackers" / "tensorboard"
        logdir = (root / run.group / run.run_id if run.group else root / run.run_id).absolute()  # a study's trials: one folder
        return TensorBoardRun(SummaryWriter(log_dir=str(logdir)), logdir)


@dataclass
class MLflowConfig(TrackerConfig):
    # where runs go: any MLflow tracking URI ('': MLFLOW_TRACKING_URI, else a SQLite store in RECBENCH_HOME/trackers/mlflow)
    tracking_uri: str = ""
    experiment: str = "recbench"  # the MLflow experiment of the runs (created where missing)


def mlflow_name(name: str) -> str:
    """A metric or parameter name MLflow accepts (letters, digits, _ - . / space :): 'ndcg@10' -> 'ndcg_at_10'."""
    return re.sub(r"[^\w.\-/ :]", "_", name.replace("@", "_at_"))


class MLflowRun(TrackerRun):
    BATCH = 100  # MLflow takes at most 100 parameters per call

    def __init__(self, client, run_id: str, uri: str):
        self.client, self.run_id, self.uri = client, run_id, uri

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(mlflow_name(k), str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), self.BATCH):
            self.client.log_batch(self.run_id, params=items[i : i + self.BATCH])

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(mlflow_name(k), v, now, step) for k, v in metrics.items()])

    def finish(self, metrics: dict[str, float] | None, record_path: str | None) -> dict[str, str]:
        if record_path:
            self.client.set_tag(self.run_id, "recbench.record", record_path)
        self.client.set_terminated(self.run_id, "FINISHED" if metrics is not None else "FAILED")
        return {"uri": self.uri, "run_id": self.run_id}


class MLflow(Tracker):
    name = "mlflow"
    description = "MLflow runs (a local SQLite store by default, or any tracking URI)"
    Config = MLflowConfig

    def start(self, run: RunInfo, params: dict[str, Any], config: MLflowConfig) -> MLflowRun:
        uri = config.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
        local = paths.home() / "trackers" / "mlflow"
        if not uri:
            local.mkdir(parents=True, exist_ok=True)
            uri = f"sqlite:///{local.absolute() / 'mlflow.db'}"
        elif uri.startswith(("http://", "https://")):  # an unreachable server fails at once instead of retrying for minutes
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name(config.experiment)
        if experiment is not None:
            experiment_id = experiment.experiment_id
        else:
            artifacts = (local / "artifacts").absolute().as_uri() if uri.startswith("sqlite:///") and str(local) in uri else None
            try:
                experiment_id = client.create_experiment(config.experiment, artifact_location=artifacts)
            except Exception:  # another run created it meanwhile
                experiment_id = client.get_experiment_by_name(config.experiment).experiment_id
        tags = {"recbench.generator": run.generator, "recbench.dataset": run.dataset, "recbench.seed": str(run.seed),
                "recbench.setting": run.setting, **({"recbench.folder": run.folder} if run.folder else {}),
                **({"recbench.study": run.group} if run.group else {}),  # a study's trials: filter by this tag
                **({"recbench.trial": str(run.trial)} if run.trial is not None else {})}
        created = client.create_run(experiment_id, run_name=run.run_id, tags=tags)
        return MLflowRun(client, created.info.run_id, uri)


@dataclass
class WandbConfig(TrackerConfig):
    mode: str = "offline"  # W&B's mode: offline (files only; `wandb sync` uploads them later) or online; WANDB_MODE wins
    project: str = "recbench"  # the W&B project of the runs
    dir: str = ""  # W&B writes its run folders into DIR/wandb ('': RECBENCH_HOME/trackers/wandb)


class WandbRun(TrackerRun):
    def __init__(self, run):
        self.run = run
        # W&B's own step must only grow, and a run's curves have two axes: optimizer steps and epochs
        run.define_metric("train/step")
        run.define_metric("train/*", step_metric="train/step")
        run.define_metric("epoch")
        for prefix in ("epoch/*", "valid/*", "test/*"):
            run.define_metric(prefix, step_metric="epoch")

    def log_params(self, params: dict[str, Any]) -> None:
        self.run.config.update(params, allow_val_change=True)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        axis = "train/step" if all(name.startswith("train/") for name in metrics) else "epoch"
        self.run.log({**metrics, axis: step})

    def finish(self, metrics: dict[str, float] | None, record_path: str | None) -> dict[str, str]:
        if record_path:
            self.run.summary["recbench.record"] = record_path
        where = {"uri": str(Path(self.run.dir).parent), "run_id": self.run.id}
        self.run.finish(exit_code=0 if metrics is not None else 1)
        return where


class Wandb(Tracker):
    name = "wandb"
    description = "Weights & Biases runs, offline by default (files under RECBENCH_HOME; `wandb sync` uploads them)"
    Config = WandbConfig

    def start(self, run: RunInfo, params: dict[str, Any], config: WandbConfig) -> WandbRun:
        import wandb

        folder = Path(config.dir) if config.dir else paths.home() / "trackers"  # W&B writes into DIR/wandb
        folder.mkdir(parents=True, exist_ok=True)
        settings = wandb.Settings(silent=True, console="off")  # the run's output stays recbench's
        handle = wandb.init(mode=os.environ.get("WANDB_MODE") or config.mode, project=config.project, dir=str(folder),
                            name=run.run_id, config=params, reinit="create_new", settings=settings,
                            tags=[run.generator, run.dataset], group=run.group,  # W&B groups a study's trials
                            job_type=None if run.group is None else ("trial" if run.trial is not None else "best trial"))
        return WandbRun(handle)


@hookimpl
def register_trackers(register):
    register(TensorBoard())
    register(MLflow())
    register(Wandb())
