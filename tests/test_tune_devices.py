"""`recbench tune --devices`: the assignment of devices to workers (a pure function), the check
against the visible devices, two workers on a list of CPU devices, and a worker whose device fails
while the other finishes the study."""

import pytest
from optuna.trial import TrialState
from test_tune import SPACE, TINY_ARGS, options

from recbench import tune
from recbench.errors import UsageError


def test_workers_take_the_devices_round_robin():
    assert tune.assign_devices(["cuda:0", "cuda:1"], 5) == ["cuda:0", "cuda:1", "cuda:0", "cuda:1", "cuda:0"]
    assert tune.assign_devices(["cpu"], 2) == ["cpu", "cpu"]
    assert tune.assign_devices(["cuda:0", "cuda:1", "cuda:2"], 2) == ["cuda:0", "cuda:1"]


def test_auto_means_every_gpu_or_the_cpu_and_cuda_means_cuda_0():
    gpus = ["cpu", "cuda:0", "cuda:1"]
    assert tune.parse_devices("auto", gpus) == ["cuda:0", "cuda:1"]
    assert tune.parse_devices("auto", ["cpu"]) == ["cpu"]
    assert tune.parse_devices(" cuda:1, cuda ,cpu", gpus) == ["cuda:1", "cuda:0", "cpu"]


@pytest.mark.parametrize("text, message", [
    ("cuda:2", "--devices names 'cuda:2', which torch does not see here. Visible devices: cpu, cuda:0, cuda:1"),
    ("cuda:0,gpu1", "--devices names 'gpu1'"),
    (" , ", "--devices is empty"),
])
def test_a_device_that_is_not_there_is_a_usage_error_listing_the_visible_ones(text, message):
    with pytest.raises(UsageError) as err:
        tune.parse_devices(text, ["cpu", "cuda:0", "cuda:1"])
    assert message in str(err.value)


def test_the_command_exits_2_naming_the_visible_devices(cli, home):
    visible = ", ".join(tune.visible_devices())
    err = cli("tune", "-p", "sasrec", "-d", "ml-100k", "--devices", "cuda:7", check=2).stderr.replace("\n", "")
    assert f"--devices names 'cuda:7', which torch does not see here. Visible devices: {visible}" in err


@pytest.mark.process  # the workers' lines reach the command's stdout only from a process of its own
def test_two_workers_on_a_list_of_cpu_devices_record_their_device(cli, synthetic, home, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    out = cli("tune", "-p", "sasrec", "-d", "ml-100k", "--n-trials", "3", "--devices", "cpu,cpu", "--space", str(space),
              "--storage", storage, "--study-name", "on-cpus", "--sampler", "random", "--pruner", "none", *TINY_ARGS).stdout
    assert "[worker 0 on cpu]" in out and "[worker 1 on cpu]" in out  # --devices with two entries: two workers
    study = tune.load_study("on-cpus", storage)
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 3 and len({t.user_attrs["worker"] for t in trials}) == 2
    assert all(t.user_attrs["device"] == "cpu" and t.user_attrs["device_name"] for t in trials)
    notes = {row["number"]: row["notes"] for row in tune.trial_rows(study)}  # what --show prints
    assert all(f"on cpu ({t.user_attrs['device_name']})" in notes[t.number] for t in trials)


@pytest.mark.slow  # worker processes train
def test_a_worker_whose_device_fails_fails_its_trials_and_the_study_goes_on(synthetic, home, tmp_path):
    """cuda:0 on a build of torch without CUDA is a device that fails at every trial (the command
    refuses it; TuneOptions takes it as given): its trials are failed with the error and device,
    queued again, and the CPU worker finishes the study."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("needs a machine where cuda:0 fails: torch sees a CUDA device here")
    opts = options(tmp_path, SPACE, n_trials=3, jobs=2, devices=["cpu", "cuda:0"], storage=f"sqlite:///{tmp_path / 's.db'}",
                   study_name="one-fails", max_consecutive_failures=2)
    result = tune.run_study(opts, log=lambda s: None)
    study = tune.load_study("one-fails", opts.storage)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    failed = [t for t in study.get_trials(states=(TrialState.FAIL,)) if not t.user_attrs.get("surplus")]
    assert len(complete) == 3 and all(t.user_attrs["device"] == "cpu" for t in complete)
    assert failed and all(t.user_attrs["device"] == "cuda:0" and "CUDA" in t.user_attrs["error"] for t in failed)
    assert result.record.device.type == "cpu"
