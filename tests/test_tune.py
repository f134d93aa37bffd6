"""`recbench tune`: search spaces and their errors, trial 0 = the defaults, real tiny studies on
MovieLens-100K (record + leaderboard row, pruning, resuming, a killed worker, failures, two worker
processes), a third-party generator, --show, and bad input."""

import dataclasses
import datetime
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from recbench import registry as plugin_registry
from recbench import runner, tune
from recbench.errors import UsageError
from recbench.results import records

TINY = {"n_embd": "16", "n_head": "1", "n_layer": "1", "max_seq_len": "20", "epochs": "3", "batch_size": "256",
        "eval_every": "1", "eval_start_epoch": "1", "patience": "20", "dropout": "0.1"}
TINY_ARGS = [f"--{k}={v}" for k, v in TINY.items()]


def sasrec_fields():
    return tune.space_fields(runner.resolve(runner.RunSpec("sasrec", "ml-100k")))


def tune_options(generator: str, dataset: str, **kw) -> tune.TuneOptions:
    """TuneOptions of `kw`: the RunSpec's fields go to its run, the others are the study's."""
    run_fields = {f.name for f in dataclasses.fields(runner.RunSpec)}
    run = runner.RunSpec(generator, dataset, **{k: v for k, v in kw.items() if k in run_fields})
    return tune.TuneOptions(run, **{k: v for k, v in kw.items() if k not in run_fields})


def options(tmp_path, space: str, **kw) -> tune.TuneOptions:
    path = tmp_path / "space.yaml"
    path.write_text(space)
    base = dict(space_file=str(path), overrides=dict(TINY), device="cpu", sampler="random", pruner="none")
    return tune_options("sasrec", "ml-100k", **{**base, **kw})


# ---- search spaces -----------------------------------------------------------------------------


def test_space_becomes_suggest_calls_with_log_int_and_categorical():
    space = {"lr": {"type": "float", "low": "1e-4", "high": 1e-2, "log": True},  # YAML reads 1e-4 as a string
             "n-layer": {"type": "int", "low": 1, "high": 4, "step": 1},
             "dropout": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.1},
             "loss": {"type": "categorical", "choices": ["bce", "ce"]}}
    params = tune.parse_space(space, sasrec_fields(), "test")
    assert params["lr"] == tune.Param("lr", "float", 1e-4, 1e-2, True, None)
    assert params["n_layer"] == tune.Param("n_layer", "int", 1, 4, False, 1)  # keys are normalised like --n-layer
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        values = tune.suggest(trial, params)
        assert 1e-4 <= values["lr"] <= 1e-2 and isinstance(values["lr"], float)
        assert values["n_layer"] in (1, 2, 3, 4) and isinstance(values["n_layer"], int)
        assert round(values["dropout"] * 10, 6) == int(round(values["dropout"] * 10)) and 0 <= values["dropout"] <= 0.5
        assert values["loss"] in ("bce", "ce")
        study.tell(trial, 0.0)
    d = study.trials[0].distributions
    assert d["lr"] == optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)
    assert d["n_layer"] == optuna.distributions.IntDistribution(1, 4)
    assert d["loss"] == optuna.distributions.CategoricalDistribution(["bce", "ce"])
    assert len({t.params["lr"] for t in study.trials}) == 20  # sampled, not fixed


@pytest.mark.parametrize("space, message", [
    ({"lr": {"type": "uniform", "low": 0.1, "high": 1}}, "key 'lr': unknown type 'uniform'. Valid types: float, int, categorical"),
    ({"lr": {"type": "float", "low": 0.1, "high": 0.01}}, "key 'lr': low (0.1) is greater than high (0.01)"),
    ({"n_layers": {"type": "int", "low": 1, "high": 2}}, "key 'n_layers': not a config field of this run. Did you mean 'n_layer'? Valid keys:"),
    ({"lr": {"type": "float", "low": 0, "high": 0.1, "log": True}}, "key 'lr': a log range needs low > 0"),
    ({"lr": {"type": "float", "lo": 0.1, "high": 1}}, "key 'lr': unknown setting(s) 'lo' for type float"),
    ({"lr": {"type": "float", "high": 1}}, "key 'lr': type float needs 'low' and 'high'; 'low' is missing"),
    ({"n_layer": {"type": "float", "low": 1, "high": 3}}, "key 'n_layer': type float gives values such as 1.0, but the field is int"),
    ({"n_layer": {"type": "int", "low": 1.5, "high": 3}}, "key 'n_layer': 'low' must be an integer"),
    ({"loss": {"type": "categorical", "choices": []}}, "key 'loss': type categorical needs a non-empty list 'choices'"),
    ({"loss": {"type": "categorical", "choices": ["bce", "focal"]}}, "key 'loss': choice 'focal' does not fit the field, which is one of 'bce', 'ce'"),
    ({"resume": {"type": "categorical", "choices": ["true"]}}, "key 'resume': not a config field"),
    ({"lr": [0.1, 0.2]}, "key 'lr': expected a mapping"),
    ({}, "expected a non-empty mapping"),
])
def test_bad_space_is_a_usage_error_naming_the_key(space, message):
    with pytest.raises(UsageError) as err:
        tune.parse_space(space, sasrec_fields(), "test")
    assert message in str(err.value)


def test_space_file_errors_name_the_file_and_line(tmp_path):
    opts = options(tmp_path, "lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}\ndropout: {type: gauss, low: 0, high: 1}\n")
    with pytest.raises(UsageError, match=r"file '.*space.yaml', line 2\), key 'dropout': unknown type 'gauss'"):
        tune.make_plan(opts)
    (tmp_path / "space.yaml").write_text("lr: {type: float, low: [\n")
    with pytest.raises(UsageError, match=r"space.yaml' could not be parsed"):
        tune.make_plan(opts)
    opts.run.overrides["lr"] = "0.5"  # trial 0 runs the defaults, so they must lie in the space
    (tmp_path / "space.yaml").write_text("lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}\n")
    with pytest.raises(UsageError, match=r"'lr' \(float in \[0.0001, 0.01, log\]\) does not contain its starting value 0.5 \(from command line\)"):
        tune.make_plan(opts)


def test_every_declared_search_space_is_valid_and_contains_the_defaults():
    registry = plugin_registry.registry()
    for name in registry.names("generator"):
        gen = registry.entry("generator", name).obj
        if not gen.search_space:
            continue
        plan = tune.make_plan(tune_options(name, "ml-100k"))
        assert set(plan.params) == set(gen.search_space) and plan.study == f"{name}__ml-100k"
        assert all(tune.contains(plan.params[k], v) for k, v in plan.defaults.items())


def test_trial_0_is_the_resolved_defaults_and_the_study_name_is_deterministic(tmp_path):
    plain = tune.make_plan(tune_options("sasrec", "ml-100k"))
    assert plain.defaults == {"lr": 1e-3, "dropout": 0.2, "n_embd": 50, "n_layer": 2, "loss": "bce"}  # dropout: ml-100k preset
    assert plain.study == "sasrec__ml-100k" and plain.storage.endswith("/tune/studies.db")
    fixed = tune.make_plan(tune_options("sasrec", "ml-100k", overrides={"dropout": "0.3", "epochs": "5"}))
    assert fixed.defaults["dropout"] == 0.3 and fixed.defaults["lr"] == 1e-3
    assert fixed.study.startswith("sasrec__ml-100k__") and len(fixed.study) == len("sasrec__ml-100k__") + 8
    assert tune.make_plan(tune_options("sasrec", "ml-100k", overrides={"epochs": "5", "dropout": "0.3"})).study == fixed.study
    assert tune.make_plan(tune_options("sasrec", "ml-100k", overrides={"epochs": "6", "dropout": "0.3"})).study != fixed.study


def test_a_named_preset_is_part_of_the_study_and_of_every_trials_run():
    preset = plugin_registry.registry().entry("generator", "diff_grm").obj.named_presets["cpu"]
    plain = tune.make_plan(tune_options("diff_grm", "ml-100k"))
    opts = tune_options("diff_grm", "ml-100k", preset="cpu")
    cpu = tune.make_plan(opts)
    assert plain.study == "diff_grm__ml-100k" and "preset" not in plain.identity  # studies without a preset keep their names
    assert cpu.identity["preset"] == "cpu" and cpu.study.startswith("diff_grm__ml-100k__") and cpu.study != plain.study
    assert cpu.defaults["lr"] == preset["lr"] and cpu.resolved.origins[("generator", "lr")] == "preset diff_grm:cpu"  # trial 0
    assert tune.make_plan(tune_options("diff_grm", "ml-100k", preset="cpu")).study == cpu.study  # deterministic
    spec = tune.base_spec(opts, {"lr": 0.002})  # a trial's run, and the best trial's re-run
    gen = runner.resolve(spec).configs["generator"]
    assert spec.preset == "cpu" and (gen.n_embd, gen.epochs, gen.lr) == (preset["n_embd"], preset["epochs"], 0.002)
    same_values = tune.make_plan(tune_options("diff_grm", "ml-100k", overrides=dict(preset)))
    assert same_values.identity["config"] == cpu.identity["config"]  # the same resolved config ...
    assert same_values.study not in (cpu.study, plain.study)  # ... but the preset counts by name


# ---- real tiny studies ---------------------------------------------------------------------------


SPACE = "lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}\ndropout: {type: float, low: 0.0, high: 0.5}\n"


@pytest.mark.slow  # trains four models
def test_tune_writes_the_best_trials_record_the_leaderboard_lists_it_and_show_plots(cli, synthetic, home, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    out = cli("tune", "-p", "sasrec", "-d", "ml-100k", "--n-trials", "3", "--space", str(space), "--sampler", "random",
              "--device", "cpu", *TINY_ARGS).stdout
    assert "trial 0 {lr=0.001, dropout=0.1}" in out  # trial 0: the resolved defaults (dropout fixed by TINY)
    [path] = (home / "home" / "results" / "ml-100k").glob("*.json")  # trials write no records; the best trial's re-run does
    record = records.load(path)
    info = record.tune
    assert info.study.startswith("sasrec__ml-100k__") and info.trials == {"complete": 3} and info.metric == "ndcg@10"
    assert record.config["generator"]["lr"] == info.params["lr"] and record.command.startswith("recbench tune")
    assert record.metrics.valid["ndcg@10"] == pytest.approx(info.value)  # the re-run repeats the trial exactly
    runs = sorted((home / "home" / "runs").iterdir())
    assert len(runs) == 4  # 3 trials + the re-run
    metas = [json.loads((r / "run.json").read_text()) for r in runs]
    assert sum(m["record"] is None for m in metas) == 3 and sum(m["record"] == str(path) for m in metas) == 1

    board = cli("leaderboard", "--format", "csv").stdout
    assert record.config_fingerprint in board and f"{record.metrics.test['ndcg@10']:.6f}" in board  # the CSV's six decimals

    shown = cli("tune", "--show", info.study, "--plot-dir", str(tmp_path / "plots")).stdout
    assert re.findall(r"^│\s+(\d+)(?: \*)?\s+│", shown, re.M) == ["0", "1", "2"]
    assert "COMPLETE" in shown and "defaults" in shown and "lr=0.001, dropout=0.1" in shown
    pngs = sorted(p.name for p in (tmp_path / "plots").glob("*.png"))
    assert pngs == [f"{info.study}_{k}.png" for k in ("history", "importance", "intermediate")]
    assert all((tmp_path / "plots" / p).stat().st_size > 10_000 for p in pngs)

    again = cli("tune", "-p", "sasrec", "-d", "ml-100k", "--n-trials", "3", "--space", str(space), "--device", "cpu", *TINY_ARGS).stdout
    assert "already re-trained and tested" in again  # a finished study is not re-run, and its record is not duplicated
    assert len(list((home / "home" / "results" / "ml-100k").glob("*.json"))) == 1


@pytest.mark.slow  # a study: trains a model per trial
def test_a_trial_that_is_behind_is_pruned(synthetic, home, tmp_path):
    opts = options(tmp_path, "lr: {type: float, low: 1.0e-7, high: 1.0e-2, log: true}\n", n_trials=3, pruner="median",
                   pruner_startup_trials=1, prune_from_epoch=1)
    opts.run.overrides["lr"] = "0.01"  # trial 0 learns quickly ...
    _, study, _ = tune.start(opts)
    study.enqueue_trial({"lr": 1e-7})  # ... trial 1 cannot learn at all
    result = tune.run_study(opts)
    trials = study.get_trials()
    assert [t.state for t in trials[:2]] == [TrialState.COMPLETE, TrialState.PRUNED]
    last = max(trials[1].intermediate_values)
    assert last < int(TINY["epochs"])  # stopped at a validation before the end of training ...
    assert trials[1].intermediate_values[last] < trials[0].intermediate_values[last]  # ... because it was behind there
    assert result.trials["complete"] + result.trials["pruned"] == 3 and result.best_trial != 1
    assert f"pruned at epoch {last}" in tune.trial_rows(study)[1]["notes"]
    run_json = Path(trials[1].user_attrs["run_dir"]) / "run.json"  # the pruned trial's run folder is marked ...
    meta = json.loads(run_json.read_text())
    assert meta["abandoned"] == "pruned" and meta["record"] is None
    spec = tune.base_spec(opts, trials[1].params)
    spec.resume = "true"
    said = []  # ... so `recbench run --resume=true` of its config does not continue it: it starts a new run
    new = runner.run_folder(spec, runner.resolve(spec), log=said.append)[1]
    assert new != run_json.parent and said[0].startswith("--resume: nothing to resume (no unfinished run of sasrec on ml-100k")
    shutil.rmtree(new)  # the new run's folder (never trained in here)
    run_json.write_text(json.dumps({k: v for k, v in meta.items() if k not in ("record", "abandoned")}))
    assert runner.run_folder(spec, runner.resolve(spec))[1] == run_json.parent  # (which it would, unmarked)


@pytest.mark.slow  # a study: trains a model per trial
def test_resuming_a_study_adds_trials_and_leaves_the_finished_ones_untouched(synthetic, home, tmp_path):
    opts = options(tmp_path, SPACE, n_trials=2)
    first = tune.run_study(opts)
    assert first.ran == 2
    study = tune.load_study(first.study)
    before = [(t.number, t.state, t.params, t.value, t.datetime_complete) for t in study.get_trials()]
    opts.n_trials = 4
    second = tune.run_study(opts)
    assert second.study == first.study and second.ran == 2 and second.trials == {"complete": 4}
    after = [(t.number, t.state, t.params, t.value, t.datetime_complete) for t in tune.load_study(first.study).get_trials()]
    assert after[:2] == before and [a[0] for a in after] == [0, 1, 2, 3]


@pytest.mark.slow  # a study: trains a model per trial
@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # the test asks for a trial by hand, outside optimize()
def test_a_killed_worker_trial_is_failed_and_run_again_with_the_same_values(synthetic, home, tmp_path):
    opts = options(tmp_path, SPACE, n_trials=2)
    plan, study, _ = tune.start(opts)
    killed = study.ask()  # trial 0 (the defaults) was running when its process died
    tune.suggest(killed, plan.params)
    spec = tune.base_spec(opts, plan.defaults)
    _, folder = runner.run_folder(spec, runner.resolve(spec))  # its run folder, as the runner made it
    killed.set_user_attr("run_dir", str(folder))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    killed.set_user_attr("worker", f"{socket.gethostname()}:{dead.pid}")
    tune.run_study(opts)
    trials = study.get_trials()
    assert trials[0].state == TrialState.FAIL
    assert trials[1].state == TrialState.COMPLETE and trials[1].params == plan.defaults and trials[1].user_attrs["retry_of"] == 0
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2
    assert json.loads((folder / "run.json").read_text())["abandoned"] == "killed"  # never resumed by `recbench run --resume`


@pytest.mark.slow  # a study: trains a model per trial
def test_a_failing_trial_is_recorded_as_fail_and_retried_once(synthetic, home, tmp_path, monkeypatch):
    from recbench_plugins import sasrec

    build = sasrec.SASRecGenerator.build

    def failing_build(self, config, split):
        model = build(self, config, split)
        if config.lr == 0.005:  # fails in its first training step, after its run folder was made
            def loss(batch):
                raise RuntimeError("out of memory (simulated)")

            model.loss = loss
        return model

    monkeypatch.setattr(sasrec.SASRecGenerator, "build", failing_build)
    opts = options(tmp_path, SPACE, n_trials=2)
    _, study, _ = tune.start(opts)
    study.enqueue_trial({"lr": 0.005, "dropout": 0.1})
    result = tune.run_study(opts)
    trials = study.get_trials()
    assert [(t.state, t.params["lr"]) for t in trials[1:3]] == [(TrialState.FAIL, 0.005)] * 2  # the retry failed too ...
    assert "RuntimeError: out of memory (simulated)" in trials[1].user_attrs["error"] and trials[2].user_attrs["retry_of"] == 1
    assert result.trials == {"complete": 2, "fail": 2}  # ... and was not retried again; the study still got its 2 trials
    metas = [json.loads((Path(t.user_attrs["run_dir"]) / "run.json").read_text()) for t in trials]
    assert [m.get("abandoned") for m in metas] == [None, "failed", "failed", None] and all(m["record"] is None for m in metas)


def test_of_two_trials_started_for_the_last_place_the_later_one_is_surplus_and_counted_apart():
    study = optuna.create_study(direction="maximize")
    study.tell(study.ask(), 0.1)
    first, second = study.ask(), study.ask()  # two workers start at once with one place left of a target of 2
    assert tune.trials.claim(first, 2) and not tune.trials.claim(second, 2)
    second.set_user_attr("surplus", True)
    study.tell(second, state=TrialState.FAIL)  # what Optuna does when the objective raises Surplus
    study.tell(first, 0.2)
    assert tune.trials.counts(study) == {"complete": 2, "surplus": 1} and tune.trials.finished(study) == 2


def take_a_queued_trial(url: str, ready, taken) -> None:
    study = optuna.load_study(study_name="race", storage=tune.open_storage(url))
    ready.wait()  # all four at once
    taken.put(study._pop_waiting_trial_id())  # what study.optimize does first in every worker


@pytest.mark.slow  # worker processes
def test_worker_processes_on_one_sqlite_file_never_take_the_same_queued_trial(tmp_path):
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    for round in range(5):  # without a write lock, 4 processes took one trial twice in most rounds
        url = f"sqlite:///{tmp_path / f'race{round}.db'}"
        study = optuna.create_study(study_name="race", storage=tune.open_storage(url))
        for _ in range(3):
            study.enqueue_trial({"x": 1.0})
        ready, taken = ctx.Barrier(4), ctx.Queue()
        procs = [ctx.Process(target=take_a_queued_trial, args=(url, ready, taken)) for _ in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        ids = [i for i in (taken.get() for _ in procs) if i is not None]
        assert len(ids) == 3 and len(set(ids)) == 3, f"round {round}: queued trials taken {ids}"


def open_the_new_study(url: str, ready) -> None:
    plan = tune.make_plan(tune_options("sasrec", "ml-100k"))
    storage = tune.open_storage(url)
    ready.wait()  # all four machines start the same new study at once
    tune.open_study(plan, storage)


@pytest.mark.slow  # worker processes
def test_machines_starting_one_new_study_at_once_queue_the_defaults_once(tmp_path):
    """Every process that found the study empty used to queue trial 0; now only the one whose
    create_study won the database's unique name does (the two-host test saw the defaults run twice)."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    plan = tune.make_plan(tune_options("sasrec", "ml-100k"))
    for round in range(3):
        url = f"sqlite:///{tmp_path / f'new{round}.db'}"
        ready = ctx.Barrier(4)
        procs = [ctx.Process(target=open_the_new_study, args=(url, ready)) for _ in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        assert [p.exitcode for p in procs] == [0, 0, 0, 0]
        study = optuna.load_study(study_name=plan.study, storage=tune.open_storage(url))
        queued = [t for t in study.get_trials() if t.user_attrs.get("defaults")]
        assert len(queued) == 1, f"round {round}: {len(queued)} defaults trials queued"
        assert study.user_attrs[tune.storage.STUDY_ATTR] == {**plan.identity, "metric": plan.metric}


@pytest.mark.slow  # worker processes
def test_two_worker_processes_share_one_study_and_finish_exactly_n_trials(synthetic, home, tmp_path):
    opts = options(tmp_path, SPACE, n_trials=5, jobs=2, sampler="tpe")
    result = tune.run_study(opts)
    everything = tune.load_study(result.study).get_trials()
    trials = [t for t in everything if not t.user_attrs.get("surplus")]
    surplus = [t for t in everything if t.user_attrs.get("surplus")]
    # two workers can each start a trial for the last place; the later one stops before it runs anything
    assert result.trials == {"complete": 5, **({"surplus": len(surplus)} if surplus else {})} and len(surplus) <= 1
    assert all(t.state == TrialState.FAIL and not t.params and "run_dir" not in t.user_attrs for t in surplus)
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == 5  # no configuration tried twice
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) == 2 and all(not w.endswith(f":{os.getpid()}") for w in workers)


def test_a_third_party_generator_is_tuned_with_its_declared_space(cli_with_plugins, synthetic, home, tmp_path):
    journal = tmp_path / "studies.log"
    out = cli_with_plugins("tune", "-p", "markov", "-d", "ml-100k", "--n-trials", "4", "--storage", f"journal:{journal}",
                           "--sampler", "random").stdout
    assert "trial 0 {pop_weight=0.01}" in out and journal.is_file()
    [path] = (home / "home" / "results" / "ml-100k").glob("*.json")
    record = records.load(path)
    assert record.generator.package == "recbench-markov" and record.tune.study == "markov__ml-100k"
    assert record.tune.storage == f"journal:{journal}" and record.tune.trials == {"complete": 4}
    assert record.config["generator"]["pop_weight"] == record.tune.params["pop_weight"]
    shown = cli_with_plugins("tune", "--show", "markov__ml-100k", "--storage", f"journal:{journal}",
                             "--plot-dir", str(tmp_path / "plots")).stdout
    assert "pop_weight=0.01" in shown and shown.count("COMPLETE") == 4


def test_a_named_preset_is_used_by_every_trial_and_the_best_trials_record(cli_with_plugins, synthetic, home, tmp_path):
    out = cli_with_plugins("tune", "-p", "markov", "-d", "ml-100k", "--preset", "short", "--n-trials", "2",
                           "--storage", f"journal:{tmp_path / 'studies.log'}", "--sampler", "random").stdout
    assert "trial 0 {pop_weight=0.1}" in out  # trial 0 starts from the preset's value, not the default 0.01
    [path] = (home / "home" / "results" / "ml-100k").glob("*.json")
    record = records.load(path)
    assert "--preset short" in record.command and record.config["generator"]["max_seq_len"] == 10
    assert record.tune.study.startswith("markov__ml-100k__") and record.tune.trials == {"complete": 2}


# ---- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (["-p", "nope", "-d", "ml-100k"], "Unknown generator 'nope'"),
    (["-p", "sasrec", "-d", "ml-100k", "--sampler", "grid"], "Unknown sampler 'grid'. Valid samplers: tpe, random."),
    (["--show", "nope"], "does not exist (no study was run with this storage yet)"),
    (["-p", "diff_grm", "-d", "ml-100k", "--preset", "gpu"], "Generator 'diff_grm' has no preset 'gpu' (its presets: cpu, ocn;"),
    (["-p", "sasrec", "-d", "ml-100k", "--preset", "cpu"], "Generator 'sasrec' has no preset 'cpu' (its presets: none;"),
])
def test_bad_input_exits_2_naming_the_value_and_what_is_valid(cli, args, message):
    assert message in cli("tune", *args, check=2).stderr.replace("\n", "")


@pytest.mark.parametrize("kw, message", [
    ({"dataset": "ml-100"}, "Unknown dataset 'ml-100'"),
    ({"pruner": "hyperband"}, "Unknown pruner 'hyperband'. Valid pruners: median, none."),
    ({"generator": "pop"}, "Generator 'pop' declares no search_space; pass --space FILE"),
    ({"storage": "studies.db"}, "--storage 'studies.db' is not a storage URL. Valid: sqlite:///PATH, journal:PATH"),
    ({"n_trials": 0}, "Tune option 'n-trials' must be >= 1; got 0."),
    ({"heartbeat_interval": 10, "grace_period": 10}, "--grace-period (10 s) must be longer than --heartbeat-interval (10 s)"),
    ({"overrides": {"n_layers": "2"}}, "Unknown config key 'n_layers'"),
])
def test_bad_options_are_usage_errors(kw, message):
    with pytest.raises(UsageError) as err:
        tune.make_plan(tune_options(**{"generator": "sasrec", "dataset": "ml-100k", **kw}))
    assert message in str(err.value)


def test_malformed_space_file_and_unknown_study_exit_2(cli, tmp_path, home):
    bad = tmp_path / "space.toml"
    bad.write_text("[lr\ntype = 'float'\n")
    assert "could not be parsed" in cli("tune", "-p", "sasrec", "-d", "ml-100k", "--space", str(bad), check=2).stderr
    bad.write_text("[lr]\ntype = 'float'\nlow = 0.1\nhigh = 0.01\n")
    with pytest.raises(UsageError, match=r"line 1\), key 'lr': low \(0.1\) is greater than high \(0.01\)"):
        tune.make_plan(tune_options("sasrec", "ml-100k", space_file=str(bad)))
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    optuna.create_study(storage=storage, study_name="other")
    with pytest.raises(UsageError, match="No study named 'nope' in .*studies.db. Studies there: other."):
        tune.load_study("nope", storage)


@pytest.mark.process  # the re-run spawns worker processes
def test_killing_the_parent_of_two_workers_ends_them_and_a_rerun_finishes_exactly_n(cli, synthetic, home, tmp_path):
    """kill -9 of `recbench tune --jobs 2`: its workers end with it; the re-run fails and re-runs their
    trials, ends with exactly N finished trials and tests the best one only after all have finished."""
    import signal
    import time

    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    args = ["tune", "-p", "sasrec", "-d", "ml-100k", "--n-trials", "4", "--jobs", "2", "--space", str(space), "--storage", storage,
            "--study-name", "killed", "--pruner", "none", "--device", "cpu", *TINY_ARGS]
    parent = subprocess.Popen([sys.executable, "-m", "recbench", *args], env=dict(os.environ), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    workers: set[int] = set()
    while time.time() < deadline and len(workers) < 2:  # wait for both workers to be in a trial
        time.sleep(1)
        try:
            study = optuna.load_study(study_name="killed", storage=storage)
        except KeyError:
            continue
        workers = {int(t.user_attrs["worker"].rsplit(":", 1)[1]) for t in study.get_trials(states=(TrialState.RUNNING,))
                   if "worker" in t.user_attrs}
    assert len(workers) == 2, "the two workers never both ran a trial"
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 30
    while time.time() < deadline and any(tune.trials.alive(pid) for pid in workers):
        time.sleep(0.5)
    assert not any(tune.trials.alive(pid) for pid in workers), "a worker outlived its killed parent"

    out = cli(*args)
    study = optuna.load_study(study_name="killed", storage=storage)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    states = [(t.number, t.state.name, t.user_attrs.get("retry_of"), t.user_attrs.get("surplus")) for t in study.get_trials()]
    assert len(complete) == 4 and not study.get_trials(states=(TrialState.RUNNING,)), states
    [path] = (home / "home" / "results" / "ml-100k").glob("*.json")
    record = records.load(path)
    assert record.tune.trials.get("running") is None and record.tune.trials["complete"] == 4
    last_end = max(t.datetime_complete for t in study.get_trials() if t.datetime_complete)
    assert record.created >= last_end.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert "Traceback" not in out.stdout + out.stderr and "queued again" in out.stdout


def test_a_study_made_before_fingerprints_hashed_the_whole_config_is_continued(tmp_path):
    """A study stores its fixed config's fingerprint; one stored under the earlier scheme
    (records.fingerprint_before_full_config) is the same config, another one is not."""
    plan = tune.make_plan(tune_options("sasrec", "ml-100k"))
    storage = tune.open_storage(f"sqlite:///{tmp_path / 'studies.db'}")
    old = records.fingerprint_before_full_config(runner.resolved_config(plan.resolved))
    assert old != plan.identity["config"]
    study = optuna.create_study(storage=storage, study_name=plan.study, direction="maximize")
    study.set_user_attr(tune.storage.STUDY_ATTR, {**plan.identity, "config": old, "metric": plan.metric})
    assert tune.open_study(plan, storage).study_name == plan.study
    fixed = tune.make_plan(tune_options("sasrec", "ml-100k", overrides={"dropout": "0.3", "epochs": "5"}))
    assert fixed.study == "sasrec__ml-100k__12c39cbe"  # the name such a study was given before: the same options continue it
    study.set_user_attr(tune.storage.STUDY_ATTR, {**plan.identity, "config": "0" * 12, "metric": plan.metric})
    with pytest.raises(UsageError, match="differs in: config"):
        tune.open_study(plan, storage)
