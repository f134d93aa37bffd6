"""Experiment trackers during a run: which ones, their settings, and keeping their failures out of it.

A run names its trackers (`recbench run --tracker tensorboard,mlflow`, else RECBENCH_TRACKERS); each is
a plugin (recbench.api.Tracker) registered through the `register_trackers` hook. Every call into a
tracker goes through `Trackers`, which catches whatever it raises: the first failure prints one
warning and drops that tracker for the rest of the run. A missing package, an unreachable server or
a bug in a third-party tracker therefore never fails a run, and a dropped tracker costs it nothing more.

What is logged: 'train/loss' and 'train/lr' every RECBENCH_TRACKER_EVERY-th optimizer step (default
10: the loss value is one the trainer already has, so logging adds no synchronisation), the epoch's
mean loss, lr, seconds and samples/s as 'epoch/...' and its validation metrics as 'valid/...' at
each epoch, the test metrics as 'test/...' at the last epoch, the resolved config as parameters,
and the record's path when the run finishes. `recbench tune --tracker ...` makes each trial a run of
its own, grouped under the study (RunInfo.group: a TensorBoard folder per study, MLflow tags
`recbench.study` and `recbench.trial`, a W&B group), and so is the best trial's re-run.
"""

from __future__ import annotations

import atexit
import math
import os
import re
import sys
from dataclasses import fields
from typing import Any, Callable

from . import config as cfg

ENV = "RECBENCH_TRACKERS"  # the trackers of a run that names none
EVERY_ENV = "RECBENCH_TRACKER_EVERY"
DEFAULT_EVERY = 10


def names(option: str | None) -> list[str]:
    """The trackers a run uses: `option` (--tracker a,b), else RECBENCH_TRACKERS; '' or 'none' for none."""
    text = option if option is not None else os.environ.get(ENV, "")
    found = [n.strip() for n in text.split(",") if n.strip()]
    return [] if [n.lower() for n in found] == ["none"] else list(dict.fromkeys(found))


def entries(wanted: list[str], registry) -> list:
    """The registry entries of `wanted`, checked before any work: an unknown name is a UsageError that
    lists the available trackers (exit 2)."""
    return [registry.entry("tracker", name) for name in wanted]


def settings(entry) -> Any:
    """The tracker's Config, each field from RECBENCH_<NAME>_<KEY> where set (RECBENCH_MLFLOW_TRACKING_URI):
    tracker settings belong to the machine more than to the run, as MLflow's own MLFLOW_TRACKING_URI does."""
    prefix = f"RECBENCH_{re.sub(r'[^A-Za-z0-9]', '_', entry.name).upper()}_"
    types = cfg.field_types(entry.obj.Config)
    values = {f.name: cfg.coerce(prefix + f.name.upper(), os.environ[prefix + f.name.upper()], types[f.name])
              for f in fields(entry.obj.Config) if prefix + f.name.upper() in os.environ}
    return entry.obj.Config(**values)


def every() -> int:
    try:
        return max(1, int(os.environ.get(EVERY_ENV, DEFAULT_EVERY)))
    except ValueError:
        return DEFAULT_EVERY


def params(resolved, spec) -> dict[str, Any]:
    """The resolved config, flat ('generator.lr'), with the run's plugins and seed: what a tracker shows as parameters."""
    out: dict[str, Any] = {"generator": resolved.generator.name, "dataset": resolved.dataset.name, "seed": spec.seed}
    if resolved.tokenizer is not None:
        out["tokenizer"] = resolved.tokenizer.name
    for section, config in resolved.configs.items():
        out.update({f"{section}.{key}": value for key, value in cfg.to_dict(config).items()})
    return out


def warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Trackers:
    """The run's open trackers. Every method is safe to call: a tracker that raises is warned about
    once and dropped; with no trackers every method does nothing."""

    def __init__(self, entries: list = (), *, warn: Callable[[str], None] = warn):
        self.entries = list(entries)
        self.runs: dict[str, Any] = {}  # tracker name -> its api.TrackerRun, while it works
        self.warn = warn
        self.every = every()
        self.last_epoch = 0

    def __bool__(self) -> bool:
        return bool(self.runs)

    def _call(self, name: str, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - a tracker must never fail the run
            self.runs.pop(name, None)
            first = (str(exc).strip().splitlines() or [""])[0]
            self.warn(f"warning: tracker '{name}' failed in {what} ({type(exc).__name__}: {first}); "
                      "the run goes on without it.")
            return None

    def start(self, info, run_params: dict[str, Any]) -> None:
        """Open a run in every tracker and log the parameters. An open run is ended as failed when the
        process exits before `finish` (a run that stops with an error or Ctrl-C)."""
        for entry in self.entries:
            handle = self._call(entry.name, "start", lambda e=entry: e.obj.start(info, run_params, settings(e)))
            if handle is not None:
                self.runs[entry.name] = handle
                self._call(entry.name, "log_params", lambda h=handle: h.log_params(run_params))
        if self.runs:
            atexit.register(self.abandon)

    def _log(self, metrics: dict[str, float], step: int) -> None:
        metrics = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)}
        for name, handle in list(self.runs.items()):
            self._call(name, "log_metrics", lambda h=handle: h.log_metrics(metrics, step))

    def step(self, step: int, loss: float, lr: float) -> None:
        """After optimizer step `step` (1-based, counted over the whole run): kept every `every` steps."""
        if self.runs and step % self.every == 0:
            self._log({"train/loss": loss, "train/lr": lr}, step)

    def epoch(self, entry: dict[str, Any]) -> None:
        """After an epoch: `entry` is its line of the history (train.train's log.jsonl)."""
        self.last_epoch = entry["epoch"]
        if not self.runs:
            return
        metrics = {f"epoch/{key}": entry[key] for key in ("loss", "lr", "seconds", "samples_per_s") if key in entry}
        metrics.update({f"valid/{key}": value for key, value in (entry.get("valid") or {}).items()})
        self._log(metrics, entry["epoch"])

    def finish(self, test: dict[str, float] | None, record_path: str | None) -> dict[str, dict[str, str]]:
        """Log the test metrics, end every run; {tracker name: where it keeps the run} for the record."""
        if test:
            self._log({f"test/{key}": value for key, value in test.items()}, self.last_epoch)
        where = {}
        for name, handle in list(self.runs.items()):
            found = self._call(name, "finish", lambda h=handle: h.finish(test, record_path))
            if name in self.runs:
                where[name] = {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}
        self.runs.clear()
        atexit.unregister(self.abandon)
        return where

    def abandon(self) -> None:
        """End the runs of a run that stopped before its record (nothing to report but that it ended)."""
        for name, handle in list(self.runs.items()):
            self._call(name, "finish", lambda h=handle: h.finish(None, None))
        self.runs.clear()
