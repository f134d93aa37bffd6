"""Running a study: a trial's objective (a validation-only run, pruned through the trainer's on_eval
hook), worker loops and processes, and a whole `recbench tune` run ending with the best trial
re-trained and tested."""

from __future__ import annotations

import logging
import os
import re
import socket
import time
import warnings
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import optuna
from optuna.trial import TrialState

from .. import paths, runner
from ..errors import RunError, UsageError
from ..results import records
from ..train import metric_value, parse_metric
from .devices import assign
from .plan import Plan, TuneOptions, base_spec, make_plan
from .space import describe, suggest
from .storage import open_storage, open_study
from .trials import FINISHED, AfterTrial, Surplus, TrialFailed, abandon, alive, claim, counts, finished, recover, worker_id


def make_sampler(options: TuneOptions, worker: int, n_existing: int) -> optuna.samplers.BaseSampler:
    """A sampler seeded by (seed, worker, trials so far, machine): workers, resumed runs and the workers of
    other machines on the same database draw different values (two machines' first workers would
    otherwise draw the same ones)."""
    machine = zlib.crc32(socket.gethostname().encode())
    seed = int(np.random.SeedSequence([options.seed, worker, n_existing, machine]).generate_state(1)[0])
    if options.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)  # with workers in parallel, running trials count as provisional (constant liar)


def make_pruner(options: TuneOptions) -> optuna.pruners.BasePruner:
    if options.pruner == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=options.pruner_startup_trials, n_warmup_steps=options.prune_from_epoch)


def objective(trial: optuna.Trial, plan: Plan, options: TuneOptions, log: Callable[[str], None], progress: bool = True) -> float:
    """One trial: a training run of the suggested config on validation only (runner.validate); its
    value is the best validation metric of the run. Pruned through the trainer's on_eval hook. The
    run's folder is kept in the trial's `run_dir` attribute and marked abandoned if the trial is
    pruned or fails. `progress` False: the run shows no progress displays."""
    trial.set_user_attr("worker", worker_id())
    trial.set_user_attr("device", options.run.device)  # the worker's (recbench.tune.devices); the machine's name once it ran
    if not claim(trial, plan.target):
        trial.set_user_attr("surplus", True)
        raise Surplus(f"trial {trial.number}: the study already has its {plan.target} trials")
    params = suggest(trial, plan.params)
    terms = parse_metric(plan.metric)
    start = time.perf_counter()

    def on_eval(epoch: int, value: float) -> None:
        trial.report(value, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch} ({plan.metric} {value:.4f})")

    def on_run_dir(folder: Path) -> None:
        trial.set_user_attr("run_dir", str(folder))

    try:
        spec = replace(base_spec(options, params), group=plan.study, trial=trial.number)  # a tracker groups trials by study
        record = runner.validate(spec, on_eval=on_eval, on_run_dir=on_run_dir, progress=progress)
    except optuna.TrialPruned as exc:
        abandon(trial.user_attrs.get("run_dir"), "pruned")
        log(f"trial {trial.number} {fmt_params(params)}: {exc} after {time.perf_counter() - start:.0f} s")
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of the run is the trial's, recorded as FAIL
        abandon(trial.user_attrs.get("run_dir"), "failed")
        error = f"{type(exc).__name__}: {exc}"
        trial.set_user_attr("error", error[:1000])
        log(f"trial {trial.number} {fmt_params(params)}: failed ({error.splitlines()[0][:200]})")
        raise TrialFailed(error) from exc
    except BaseException:  # interrupted (Ctrl-C): Optuna records the trial as FAIL and it is run again as a new trial
        abandon(trial.user_attrs.get("run_dir"), "interrupted")
        raise
    value = metric_value(record.metrics.valid, terms)
    train = record.train
    trial.set_user_attr("valid", record.metrics.valid)
    trial.set_user_attr("device_name", record.device.name)
    if train.epochs is not None:  # a model that trains
        trial.set_user_attr("epochs", train.epochs)
        trial.set_user_attr("best_epoch", train.best_epoch)
    log(f"trial {trial.number} {fmt_params(params)}: {plan.metric} {value:.4f} "
        f"({train.epochs or 0} epochs, {time.perf_counter() - start:.0f} s)")
    return value


def fmt_params(params: Mapping[str, Any]) -> str:
    return "{" + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v!r}" for k, v in params.items()) + "}"


def work(options: TuneOptions, worker: int = 0, log: Callable[[str], None] = print, plan: Plan | None = None,
         study: optuna.Study | None = None, progress: bool = True) -> None:
    """One worker: run trials of the study until it has its target of finished trials (or the timeout);
    `progress` False: the trials show no progress displays."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    quiet_surplus()
    plan = plan or make_plan(options)
    study = study or open_study(plan, open_storage(plan.storage, options))
    if options.devices:  # this worker's own device, round robin over --devices
        options = replace(options, run=replace(options.run, device=assign(options.devices, options.jobs)[worker]))
    if finished(study) >= plan.target:
        return
    study.sampler = make_sampler(options, worker, len(study.trials))
    study.pruner = make_pruner(options)
    after = AfterTrial(options.max_retries, options.max_consecutive_failures)
    # stop once finished + running trials reach the target: a running trial that fails is re-run by its own worker
    enough = optuna.study.MaxTrialsCallback(plan.target, states=(*FINISHED, TrialState.RUNNING))
    prefix = f"[worker {worker}{' on ' + options.run.device if options.devices else ''}] " if options.jobs > 1 else ""
    try:
        study.optimize(lambda trial: objective(trial, plan, options, lambda s: log(prefix + s), progress), timeout=options.timeout,
                       catch=(TrialFailed,), callbacks=[after, enough], gc_after_trial=True)
    except Surplus:
        pass
    if after.in_a_row >= after.limit:
        raise RunError(f"{after.in_a_row} trials of study '{plan.study}' failed in a row; the last error: {after.last_error}")


class QuietSurplus(logging.Filter):
    """Drop optuna's warnings (with traceback) about a surplus trial: that is a normal end, not an error."""

    def __init__(self):
        super().__init__()
        self.trials: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        number = re.match(r"Trial (\d+) failed", record.getMessage())
        if number and record.exc_info and isinstance(record.exc_info[1], Surplus):
            self.trials.add(number.group(1))
        return not (number and number.group(1) in self.trials)


def quiet_surplus() -> None:
    log = logging.getLogger("optuna.study._optimize")
    if not any(isinstance(f, QuietSurplus) for f in log.filters):
        log.addFilter(QuietSurplus())


def die_with_parent(parent: int) -> None:
    """End this worker process when its parent ends, however it ends (kill -9 included)."""
    import signal
    import sys
    import threading

    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: the kernel kills us with the parent
    else:  # elsewhere: watch for the parent's end (this process is then re-parented)
        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(1)
            os._exit(1)

        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent:  # the parent ended before the signal was set up
        os._exit(1)


def spawned_worker(options: TuneOptions, worker: int, parent: int | None = None, plan: Plan | None = None) -> None:
    """Entry point of a worker process (`--jobs N`): trials only, one log line each, no progress bars.
    It ends with its parent `recbench tune`, so a killed parent leaves no worker behind. `plan` is
    the parent's, so that a worker does not resolve the run again."""
    import sys

    from ..errors import RecbenchError

    if parent is not None:
        die_with_parent(parent)
    try:  # no progress displays: N processes would draw N of them over each other
        work(options, worker, log=lambda s: print(s, flush=True), plan=plan, progress=False)
    except RecbenchError as exc:
        print(f"[worker {worker}] Error: {exc}", file=sys.stderr, flush=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


def run_workers(options: TuneOptions, jobs: int, plan: Plan | None = None, log: Callable[[str], None] = print) -> None:
    """Run `jobs` worker processes (spawned) on the study of `plan` and wait for them. A worker that
    ends with an error (e.g. its GPU failed: its trials are recorded as failed and queued again) is
    reported and the others' work stands; a RunError only when every worker failed."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=spawned_worker, args=(options, i, os.getpid(), plan), name=f"recbench-tune-{i}") for i in range(jobs)]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        for p in procs:
            p.join(timeout=30)
        raise
    failed = [f"worker {i}: exit code {p.exitcode}" for i, p in enumerate(procs) if p.exitcode != 0]
    if failed and len(failed) == len(procs):
        raise RunError(f"Tuning workers failed ({'; '.join(failed)}); see their messages above.")
    if failed:
        log(f"a worker ended with an error ({'; '.join(failed)}); the other workers' trials stand and the study goes on")


@dataclass
class TuneResult:
    study: str
    storage: str
    trials: dict[str, int]  # per state, after this run
    ran: int  # trials that finished in this run
    best_trial: int
    best_value: float
    best_params: dict[str, Any]
    record: records.Record
    record_path: Path
    retrained: bool  # False: the best trial's record already existed and was reused
    seconds: float


def start(options: TuneOptions, log: Callable[[str], None] = print) -> tuple[Plan, optuna.Study, optuna.storages.BaseStorage]:
    """Make the plan, open (or create, queueing trial 0: the defaults) the study, recover from a killed run."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    plan = make_plan(options)
    from ..data import prepare

    prepare(plan.resolved.dataset.obj, plan.resolved.configs["dataset"])  # missing data is a usage error now, not N failed trials
    storage = open_storage(plan.storage, options)
    study = open_study(plan, storage)
    again = recover(study, storage, options.max_retries)
    if again:
        log(f"queued again with the same parameters: trial(s) {', '.join(map(str, again))} (failed or killed)")
    return plan, study, storage


def run_study(options: TuneOptions, log: Callable[[str], None] = print, show_config=None) -> TuneResult:
    """Run the study to its target (in `options.jobs` processes), then re-train its best trial and
    evaluate it on test, writing a result record with a `tune` field."""
    t0 = time.perf_counter()
    plan, study, storage = start(options, log)
    before = finished(study)
    log(f"study '{plan.study}' in {plan.storage}: {before} of {plan.target} trials finished; "
        f"searching {', '.join(f'{k} ({describe(p)})' for k, p in plan.params.items())}")
    while True:  # until the target is reached with no trial of this study running on this machine
        done = finished(study)
        left = plan.target - done
        if left > 0:
            if options.jobs == 1:
                work(options, 0, log, plan, study)
            else:
                run_workers(options, min(options.jobs, left), plan, log)
        again = recover(study, storage, options.max_retries)  # trials of workers that died meanwhile: failed, queued again
        running = running_here(study)
        if running:  # e.g. the workers of another `recbench tune` of this study: their trials end first
            log(f"waiting for trial(s) {', '.join(str(t) for t, _ in running)} still running in process(es) "
                f"{', '.join(sorted({p for _, p in running}))} on this machine")
            while running_here(study):
                time.sleep(WAIT_SECONDS)
            continue
        elsewhere = running_elsewhere(study)
        if elsewhere and finished(study) < plan.target and options.timeout is None:
            log(f"waiting for trial(s) {', '.join(f'{t} ({w})' for t, w in elsewhere)} running on other machines; a trial "
                f"without a heartbeat for {options.grace_period} s is failed and run again here")
            wait_elsewhere(study, min(WAIT_SECONDS, options.heartbeat_interval))
            continue
        if search_ended(options, plan, study, done, again):
            break
    trials = counts(study)
    if not trials.get("complete"):
        raise RunError(f"Study '{plan.study}' has no completed trial ({trials}); nothing to re-train.")
    best = study.best_trial
    log(f"best: trial {best.number} with {plan.metric} {best.value:.4f} {fmt_params(best.params)}")
    record, path, retrained = evaluate_best(plan, options, study, best, trials, log, show_config)
    return TuneResult(plan.study, plan.storage, trials, finished(study) - before, best.number, best.value, dict(best.params),
                      record, path, retrained, time.perf_counter() - t0)


WAIT_SECONDS = 5


def search_ended(options: TuneOptions, plan: Plan, study: optuna.Study, before: int, again: list[int]) -> bool:
    """Whether the study loop of run_study ends, once no trial of the study runs on this machine: the
    time is up, or no failed trial was queued again and either the target is reached or the round
    that began with `before` finished trials finished none (nothing more can be run here, e.g. the
    trials left are running elsewhere)."""
    if options.timeout is not None:
        return True
    return not again and (finished(study) >= plan.target or finished(study) == before)


def running_here(study: optuna.Study) -> list[tuple[int, str]]:
    """(number, pid) of this study's trials running in a live process on this machine."""
    host = socket.gethostname()
    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker_host, _, pid = str(t.user_attrs.get("worker", "")).rpartition(":")
        if worker_host == host and pid.isdigit() and alive(int(pid)):
            out.append((t.number, pid))
    return out


def running_elsewhere(study: optuna.Study) -> list[tuple[int, str]]:
    """(number, worker) of this study's trials running on other machines (workers of the same database
    storage started there)."""
    host = socket.gethostname()
    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = str(t.user_attrs.get("worker", ""))
        if worker.rpartition(":")[0] != host:
            out.append((t.number, worker or "unknown worker"))
    return out


def wait_elsewhere(study: optuna.Study, every: float) -> None:
    """Wait until no trial of the study runs on another machine. Each finishes, or, where its machine
    or worker died, stops beating: Optuna's heartbeat check fails it once its grace period has passed,
    and the storage's stale-trial callback (storage.open_storage) queues it again, to be run here.
    Storage without heartbeats (a journal file) can only wait for the trial's own end."""
    while running_elsewhere(study):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        if running_elsewhere(study):
            time.sleep(every)


def find_record(folder: Path, dataset: str, study: str, storage: str, trial: int) -> Path | None:
    """An existing record that re-trained `trial` of this study, if any."""
    for path in records.find([folder], dataset):
        try:
            tune = records.load(path).tune
        except UsageError:  # a damaged record is none of this study's (the leaderboard names it)
            continue
        if tune is not None and (tune.study, tune.storage, tune.trial) == (study, storage, trial):
            return path
    return None


def evaluate_best(plan: Plan, options: TuneOptions, study: optuna.Study, best: optuna.trial.FrozenTrial, trials: dict[str, int],
                  log: Callable[[str], None], show_config=None) -> tuple[records.Record, Path, bool]:
    """Re-train the best trial's config and evaluate it once on test (a normal run with a `tune`
    field); if that was already done for this trial, return the existing record."""
    folder = options.run.results_dir or paths.results_dir()
    existing = find_record(folder, plan.dataset, plan.study, plan.storage, best.number)
    if existing is not None:
        log(f"trial {best.number} was already re-trained and tested: {existing}")
        return records.load(existing), existing, False
    spec = replace(base_spec(options, best.params), group=plan.study)
    spec.tune = records.tune_field(plan.study, plan.storage, best.number, plan.metric, best.value, best.params, trials)
    log(f"re-training trial {best.number}'s config and evaluating it on test")
    record, path = runner.run(spec, log=log, show_config=show_config)
    return record, path, True
