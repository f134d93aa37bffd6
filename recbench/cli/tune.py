"""`recbench tune`: search a generator's hyperparameters with Optuna on validation, then re-train the
best trial and evaluate it once on test (a normal result record with a `tune` field); or, with
--show STUDY, print a study's trials and draw its plots."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from .. import config as cfg
from .. import paths
from ..errors import UsageError
from .run import show_config, show_metrics

if TYPE_CHECKING:  # imported when the command runs (optuna, torch): `recbench --help` starts without them
    from .. import tune as tuning

console = Console(soft_wrap=True)  # long paths stay whole when the output goes to a file


def command(
    ctx: typer.Context,
    plugin: Optional[str] = typer.Option(None, "--plugin", "-p", help="Generator to tune (see `recbench plugins`)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="Dataset name or alias (see `recbench datasets`)."),
    n_trials: int = typer.Option(20, "--n-trials", help="Finished (complete or pruned) trials the study should have, earlier runs "
                                                      "included: re-running a killed command runs only the rest; a larger N extends it."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Start no new trial after this many seconds."),
    storage: Optional[str] = typer.Option(None, "--storage", help="Optuna storage URL (sqlite:///PATH, postgresql://..., ...) or "
                                                                 "journal:PATH (default: sqlite:///RECBENCH_HOME/tune/studies.db)."),
    study_name: Optional[str] = typer.Option(None, "--study-name", help="Default: GENERATOR__DATASET, plus a short hash when the "
                                                                       "fixed config, space, seed, tokenizer or preset are not the defaults."),
    jobs: Optional[int] = typer.Option(None, "--jobs", help="Worker processes sharing the study (default: 1, or one per device of --devices)."),
    devices: Optional[str] = typer.Option(None, "--devices", help="Devices of the workers, round robin: cuda:0,cuda:1,... or auto "
                                                               "(every visible GPU, one worker each; cpu without CUDA)."),
    sampler: str = typer.Option("tpe", "--sampler", help="tpe or random."),
    pruner: str = typer.Option("median", "--pruner", help="median or none."),
    space: Optional[Path] = typer.Option(None, "--space", help="Search space file (YAML, TOML or JSON) instead of the generator's own."),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="Semantic-ID tokenizer (semantic-ID generators)."),
    preset: Optional[str] = typer.Option(None, "--preset", help="A named setting of the generator, e.g. a reduced 'cpu' (see "
                                                               "`recbench plugins --json`), used by every trial and the best trial's re-run."),
    seed: int = typer.Option(0, "--seed", help="Random seed of every trial."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML or TOML file of config values fixed for every trial."),
    results_dir: Optional[Path] = typer.Option(None, "--results-dir", help="Where the best trial's record goes (default: RECBENCH_HOME/results)."),
    tracker: Optional[str] = typer.Option(None, "--tracker", help="Experiment trackers for every trial, each trial a run grouped under "
                                          "the study (tensorboard, mlflow, wandb; default: RECBENCH_TRACKERS)."),
    show: Optional[str] = typer.Option(None, "--show", help="Print this study's trials and write its plots instead of tuning."),
    plot_dir: Optional[Path] = typer.Option(None, "--plot-dir", help="With --show: where the PNGs go (default: RECBENCH_HOME/tune/plots)."),
) -> None:
    """Tune a generator's hyperparameters on a dataset. Extra --key=value arguments are config values fixed for every trial."""
    from .. import tune as tuning
    from ..runner import RunSpec

    if show is not None:
        if ctx.args:
            raise UsageError(f"--show takes no config overrides; got {' '.join(ctx.args)}.")
        show_study(show, storage, plot_dir)
        return
    for option, value in (("--plugin", plugin), ("--dataset", dataset)):
        if not value:
            raise UsageError(f"Missing option '{option}' (or --show STUDY to look at a study).")
    if results_dir is not None:  # refused now, not when the best trial's record is written
        paths.folder(results_dir, "--results-dir")
    spec = RunSpec(generator=plugin, dataset=dataset, tokenizer=tokenizer, preset=preset, seed=seed, device=device,
                   config_file=str(config) if config else None, overrides=cfg.parse_overrides(ctx.args), results_dir=results_dir,
                   trackers=tracker)
    from .. import trackers
    from ..registry import registry

    trackers.entries(trackers.names(tracker), registry())  # an unknown tracker: exit 2 before any trial
    worker_devices = tuning.parse_devices(devices, tuning.visible_devices()) if devices is not None else None
    jobs = jobs if jobs is not None else len(worker_devices) if worker_devices else 1
    options = tuning.TuneOptions(spec, n_trials=n_trials, timeout=timeout, storage=storage, study_name=study_name, jobs=jobs,
                                 devices=worker_devices,
                                 sampler=sampler, pruner=pruner, space_file=str(space) if space else None)
    result = tuning.run_study(options, log=console.print, show_config=show_config)
    summary(result)


def summary(result: tuning.TuneResult) -> None:
    from .. import tune as tuning

    states = ", ".join(f"{n} {state}" for state, n in sorted(result.trials.items()))
    console.print(f"Study [bold]{result.study}[/] ({result.storage}): {result.ran} trials finished in this run; "
                  f"all trials: {states}; {result.seconds / 60:.1f} min.")
    console.print(f"Best: trial {result.best_trial}, validation {result.best_value:.4f}, {tuning.fmt_params(result.best_params)}")
    show_metrics(result.record)
    verb = "written to" if result.retrained else "already in"
    console.print(f"Result record of the best trial {verb} [bold]{result.record_path}[/]")


def fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def show_study(name: str, storage: str | None, plot_dir: Path | None) -> None:
    from .. import tune as tuning

    study = tuning.load_study(name, storage)
    rows = tuning.trial_rows(study)
    info = study.user_attrs.get(tuning.STUDY_ATTR, {})
    title = f"study {name}" + (f": {info.get('generator')} on {info.get('dataset')}, validation {info.get('metric')}" if info else "")
    table = Table(title=title, header_style="bold")
    for col, justify in (("trial", "right"), ("value", "right"), ("state", "left"), ("params", "left"), ("duration", "right"), ("notes", "left")):
        table.add_column(col, justify=justify)
    best = None
    try:
        best = study.best_trial.number
    except ValueError:  # no completed trial
        pass
    for row in rows:
        value = "-" if row["value"] is None else f"{row['value']:.4f}"
        table.add_row(str(row["number"]) + (" *" if row["number"] == best else ""), value, row["state"],
                      ", ".join(f"{k}={fmt(v)}" for k, v in row["params"].items()),
                      "-" if row["seconds"] is None else f"{row['seconds']:.0f} s", row["notes"])
    console.print(table)
    if best is not None:
        console.print(f"* best trial: {best} ({study.best_value:.4f})")
    folder = plot_dir or paths.home() / "tune" / "plots"
    written, messages = tuning.write_plots(study, folder)
    for path in written:
        console.print(f"Wrote {path}")
    for message in messages:
        console.print(f"[yellow]{message}[/]")
