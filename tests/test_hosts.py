"""Tuning across machines on one PostgreSQL database: two hosts (network namespaces, tests/hosts.py)
each run `recbench tune` on the same study; one is killed with kill -9 in the middle of a trial, its
trial is failed by Optuna's heartbeat check and run again by the other host, and the study ends with
exactly N complete trials, its best one tested once. And the database's bad input: a server that
refuses the connection, a study name reused with another search space.

The server is the one .ci/run starts (RECBENCH_TEST_POSTGRES, reachable from the hosts over the bridge
RECBENCH_TEST_BRIDGE); without it these tests skip, saying so.
"""

import json
import os
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path
from urllib.parse import urlsplit

import hosts
import optuna
import pytest
from optuna.trial import TrialState
from test_tune import SPACE, TINY

from recbench import runner, tune

POSTGRES = os.environ.get("RECBENCH_TEST_POSTGRES")
needs_postgres = pytest.mark.skipif(not POSTGRES, reason="no PostgreSQL server: RECBENCH_TEST_POSTGRES is unset (.ci/run starts one)")
pytestmark = [needs_postgres, pytest.mark.xdist_group("hosts")]  # one worker: the hosts share .ci/run's bridge and its addresses

N_TRIALS = 4
TRIAL_ARGS = [f"--{k}={v}" for k, v in {**TINY, "epochs": "5"}.items()]  # five epochs: a trial long enough to be killed in


def tune_args(space: Path, study: str, results: Path) -> list[str]:
    return ["tune", "-p", "sasrec", "-d", "ml-100k", "--storage", POSTGRES, "--study-name", study, "--n-trials", str(N_TRIALS),
            "--space", str(space), "--sampler", "random", "--pruner", "none", "--device", "cpu", "--results-dir", str(results),
            "--heartbeat-interval", "1", "--grace-period", "5", *TRIAL_ARGS]


def host_env(home: Path, host: str) -> dict[str, str]:
    """A machine of its own: its own RECBENCH_HOME (run folders, results), the same data mirror."""
    return {**os.environ, "RECBENCH_HOME": str(home / host), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}


def worker(host: hosts.Host, proc: subprocess.Popen) -> str:
    """The worker id (recbench.tune.trials.worker_id) of `recbench tune` in `proc` on `host`: the host's
    name and the process id (ip netns exec, unshare and sh exec it, so it keeps the pid Popen gave)."""
    return f"{host.hostname}:{proc.pid}"


def running(study: optuna.Study, worker_id: str) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials(states=(TrialState.RUNNING,)) if t.user_attrs.get("worker") == worker_id]


@pytest.mark.slow
@pytest.mark.process
def test_two_hosts_share_a_study_and_a_killed_hosts_trial_is_run_again_by_the_other(synthetic, home, tmp_path):
    bridge = os.environ.get("RECBENCH_TEST_BRIDGE")
    loopback = None if bridge else "RECBENCH_TEST_BRIDGE is unset: the server is reachable on loopback only"
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    study_name = f"hosts-{uuid.uuid4().hex[:8]}"
    with hosts.network(2, bridge=bridge, loopback_because=loopback) as net:
        if net.fallback:
            warnings.warn(f"two process groups on loopback instead of two network namespaces ({net.fallback})", stacklevel=1)
        a, b = net.hosts
        logs = {h.name: (tmp_path / f"{h.name}.out").open("w+") for h in net.hosts}
        procs = {h.name: h.popen([sys.executable, "-m", "recbench", *tune_args(space, study_name, tmp_path / h.name / "results")],
                                 env=host_env(tmp_path, h.name), stdout=logs[h.name], stderr=subprocess.STDOUT, text=True)
                 for h in net.hosts}
        worker_a, worker_b = worker(a, procs[a.name]), worker(b, procs[b.name])
        deadline, killed = time.time() + 120, None
        while time.time() < deadline and killed is None:  # both hosts are in a trial: host-a's machine dies
            time.sleep(0.2)
            try:
                study = optuna.load_study(study_name=study_name, storage=POSTGRES)
            except KeyError:
                continue
            in_a = running(study, worker_a)
            if in_a and running(study, worker_b):
                a.kill()
                killed = in_a[0].number
        assert killed is not None, f"host-a never ran a trial while host-b did:\n{Path(logs[a.name].name).read_text()}"
        assert procs[b.name].wait(timeout=180) == 0, Path(logs[b.name].name).read_text()
    out_b = Path(logs[b.name].name).read_text()
    study = optuna.load_study(study_name=study_name, storage=POSTGRES)
    trials = study.get_trials()
    states = [(t.number, t.state.name, t.user_attrs.get("worker"), t.user_attrs.get("retry_of"), t.user_attrs.get("surplus")) for t in trials]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == N_TRIALS and not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING)), states
    dead = trials[killed]
    assert dead.state == TrialState.FAIL and dead.user_attrs["worker"] == worker_a, states
    [retry] = [t for t in trials if t.user_attrs.get("retry_of") == killed]
    assert retry.state == TrialState.COMPLETE and retry.params == dead.params and retry.user_attrs["worker"] == worker_b, states
    # the best trial tested once: one record, by the host that finished the study, after every trial ended
    found = sorted((tmp_path / "host-a" / "results").rglob("*.json")) + sorted((tmp_path / "host-b" / "results").rglob("*.json"))
    [record] = found
    record = json.loads(record.read_text())
    assert record["tune"]["study"] == study_name and record["tune"]["trial"] == study.best_trial.number
    assert record["tune"]["trials"]["complete"] == N_TRIALS and "running" not in record["tune"]["trials"]
    assert "Traceback" not in out_b, out_b
    if not net.fallback:
        assert len({json.dumps(t.params, sort_keys=True) for t in complete}) == N_TRIALS  # two machines' samplers draw different values
        # another machine's trial: only its missing heartbeats can fail it (recover() takes this machine's only)
        assert "queued again with the same parameters" not in out_b, out_b


def test_a_refused_connection_and_a_reused_study_name_exit_2(cli, synthetic, home, tmp_path):
    url = urlsplit(POSTGRES)
    refused = POSTGRES.replace(f"{url.hostname}:{url.port}", f"{url.hostname}:1")  # nothing listens on port 1
    out = cli("tune", "-p", "sasrec", "-d", "ml-100k", "--storage", refused, check=2)
    assert f"cannot connect to the database server at {url.hostname}:1" in out.stderr.replace("\n", "") and "Connection refused" in out.stderr
    assert "Traceback" not in out.stderr
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    name = f"reused-{uuid.uuid4().hex[:8]}"
    options = tune.TuneOptions(runner.RunSpec("sasrec", "ml-100k", device="cpu", overrides=dict(TINY)), storage=POSTGRES, study_name=name,
                               space_file=str(space))
    plan = tune.make_plan(options)
    tune.open_study(plan, tune.open_storage(POSTGRES))  # the study exists, made for this search space
    space.write_text("lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}\n")  # another search space, the same name
    out = cli("tune", "-p", "sasrec", "-d", "ml-100k", "--storage", POSTGRES, "--study-name", name, "--space", str(space), "--device", "cpu",
              *[f"--{k}={v}" for k, v in TINY.items()], check=2)
    assert f"Study '{name}' in {POSTGRES} was made for another run (differs in: space)" in out.stderr.replace("\n", "")
    assert "Traceback" not in out.stderr
