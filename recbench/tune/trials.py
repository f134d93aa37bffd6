"""Trial bookkeeping shared by the workers of a study: finished trials, a trial's claim to a place
within the study's target, failed and killed trials (their run folders marked abandoned, their
retries with the same parameters)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import optuna
from optuna.trial import TrialState

from .. import run_folders

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def counts(study: optuna.Study) -> dict[str, int]:
    """Trials per state, by lower-case state name (complete, pruned, fail, running, waiting), with
    surplus trials (see `claim`: Optuna stores them as FAIL, but they never ran) counted as `surplus`."""
    out: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        key = "surplus" if t.user_attrs.get("surplus") else t.state.name.lower()
        out[key] = out.get(key, 0) + 1
    return out


def finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim(trial: optuna.Trial, target: int) -> bool:
    """Whether `trial` is within the study's target: fewer than `target` trials are finished or were
    running before it (ordered by start time, then number). Two workers that start at once cannot
    both take the last place, so the study ends with exactly `target` finished trials; the one that
    loses the race stops before suggesting anything and stays in the storage as a surplus trial."""
    me = (trial.datetime_start, trial.number)
    ahead = sum(1 for t in trial.study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
                if t.number != trial.number and (t.state != TrialState.RUNNING or (t.datetime_start, t.number) < me))
    return ahead < target


class Surplus(Exception):
    """A trial that started after the study's target was already taken by other workers' trials."""


class TrialFailed(Exception):
    """A trial's run raised; the trial is recorded as FAIL and the study goes on."""


def requeue(study: optuna.Study, trial: optuna.trial.FrozenTrial, max_retries: int) -> bool:
    """Queue a failed trial again with the same parameters, unless it was a surplus trial or its
    chain of retries is already `max_retries` long. The copy follows Optuna's retry convention
    (system attributes `failed_trial` and `retry_history`)."""
    if trial.user_attrs.get("surplus"):
        return False
    history = [*trial.system_attrs.get("retry_history", []), trial.number]
    if len(history) > max_retries:
        return False
    user_attrs = {"retry_of": trial.number, **({"defaults": True} if trial.user_attrs.get("defaults") else {})}
    try:
        copy = optuna.trial.create_trial(
            state=TrialState.WAITING, params=trial.params, distributions=trial.distributions, user_attrs=user_attrs,
            system_attrs={"failed_trial": trial.system_attrs.get("failed_trial", trial.number), "retry_history": history},
        )
    except ValueError:  # a value outside its distribution (a hand-enqueued trial) cannot be queued as a trial
        return False
    study.add_trial(copy)
    return True


def abandon(run_dir: str | Path | None, why: str) -> None:
    """Mark a trial's run folder, if it has one and it is on this machine, as never to be resumed
    (`why`: pruned, failed, killed, ...): a later `recbench run --resume` with the same config must
    not continue a trial that the study has given up."""
    if run_dir is not None and (Path(run_dir) / "run.json").is_file():
        run_folders.mark_abandoned(Path(run_dir), why)


def recover(study: optuna.Study, storage: optuna.storages.BaseStorage, max_retries: int) -> list[int]:
    """Before new trials start: fail the RUNNING trials whose worker on this machine has died (a
    killed `recbench tune`), mark the run folders of failed trials abandoned, and queue again every
    failed trial not yet retried. Returns the numbers of the trials queued again."""
    host = socket.gethostname()
    study_id = storage.get_study_id_from_name(study.study_name)
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker_host, _, pid = str(t.user_attrs.get("worker", "")).rpartition(":")
        if worker_host == host and pid.isdigit() and not alive(int(pid)):
            storage.set_trial_state_values(storage.get_trial_id_from_study_id_trial_number(study_id, t.number), TrialState.FAIL)
            abandon(t.user_attrs.get("run_dir"), "killed")
    trials = study.get_trials(deepcopy=False)
    for t in trials:
        if t.state == TrialState.FAIL:  # e.g. failed through heartbeats; a folder marked before is left as it is
            abandon(t.user_attrs.get("run_dir"), "failed")
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    return [t.number for t in trials if t.state == TrialState.FAIL and t.number not in retried and requeue(study, t, max_retries)]


class AfterTrial:
    """Callback after each trial of a worker: queue a failed trial again, and give up after
    `limit` failures in a row (a config or environment that cannot work)."""

    def __init__(self, max_retries: int, limit: int):
        self.max_retries, self.limit = max_retries, limit
        self.in_a_row, self.last_error = 0, ""

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state == TrialState.FAIL and not trial.user_attrs.get("surplus"):
            self.in_a_row += 1
            self.last_error = str(trial.user_attrs.get("error", "unknown error"))
            requeue(study, trial, self.max_retries)
            if self.in_a_row >= self.limit:
                study.stop()
        elif trial.state in FINISHED:
            self.in_a_row = 0
