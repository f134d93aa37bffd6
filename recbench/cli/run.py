"""`recbench run`: train (where the generator trains), select on validation, evaluate on test,
write a result record. Heavy modules (torch) are imported when the command runs, not at start-up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.console import Console
from rich.table import Table

from .. import config as cfg
from ..errors import UsageError
from ..registry import missing_option

if TYPE_CHECKING:
    from ..results.records import Record

console = Console(soft_wrap=True)  # long paths stay whole when the output goes to a file
err = Console(stderr=True, soft_wrap=True)


def show_config(resolved) -> None:  # a runner.Resolved
    table = Table(title=f"config: {resolved.generator.name} on {resolved.dataset.name}", header_style="bold")
    for col in ("section", "key", "value", "set by"):
        table.add_column(col)
    for section, config in resolved.configs.items():
        for key, value in cfg.to_dict(config).items():
            table.add_row(section, key, repr(value), resolved.origins.get((section, key), "default"))
    console.print(table)


def show_metrics(record: Record) -> None:
    from ..metrics import metric_names

    table = Table(title=f"{record.generator.name} on {record.dataset.name} (seed {record.seed})", header_style="bold")
    table.add_column("metric")
    table.add_column("valid", justify="right")
    table.add_column("test", justify="right")
    for name in metric_names():
        table.add_row(name, f"{record.metrics.valid[name]:.4f}", f"{record.metrics.test[name]:.4f}")
    console.print(table)


def command(
    ctx: typer.Context,
    plugin: Optional[str] = typer.Option(None, "--plugin", "-p",
                                         help="Generator to run (see `recbench plugins`; a generator may declare flags that stand for it)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d",
                                          help="Dataset name or alias (see `recbench datasets`)."),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="Semantic-ID tokenizer (semantic-ID generators)."),
    preset: Optional[str] = typer.Option(None, "--preset", help="A named setting of the generator, e.g. a reduced 'cpu', "
                                         "or several layered in order: cpu,ocn (see `recbench config NAME`)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (default 0; with --eval_only, the checkpoint's)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML or TOML file of config values."),
    results_dir: Optional[Path] = typer.Option(None, "--results-dir", help="Where to write the record (default: RECBENCH_HOME/results)."),
    nproc: int = typer.Option(1, "--nproc", min=1, help="Train data-parallel in this many processes (launches torchrun)."),
    tracker: Optional[str] = typer.Option(None, "--tracker", help="Experiment trackers that follow the run, comma-separated, "
                                          "e.g. tensorboard,mlflow (see `recbench plugins`); default: RECBENCH_TRACKERS."),
) -> None:
    """Run a generator on a dataset. Extra --key=value arguments override config values (see
    `recbench config NAME`); --resume[=FOLDER], --eval_only=true --checkpoint=PATH and --rebuild_ids
    say how the run is carried out."""
    from .. import distributed as dist
    from ..runner import RunSpec, run

    if nproc > 1 and not dist.launched():
        raise typer.Exit(launch(nproc))
    overrides = cfg.parse_overrides(ctx.args)
    control = run_control(overrides)
    plugin, dataset, tokenizer = aliased_options(overrides, plugin, dataset, tokenizer, checkpointed=control["eval_only"])
    spec = RunSpec(
        generator=plugin, dataset=dataset, tokenizer=tokenizer, preset=preset, seed=seed, device=device,
        config_file=str(config) if config else None, overrides=overrides, results_dir=results_dir, trackers=tracker, **control,
    )
    folder: list[Path] = []  # the run folder, once there is one
    try:
        record, path = run(spec, log=console.print, show_config=show_config, on_run_dir=folder.append)
    except KeyboardInterrupt as exc:  # Ctrl-C: where the run is and how to continue it, exit 130 as a shell expects
        if dist.is_main():
            interrupted(exc, folder[0] if folder else None, dist.world())
        raise typer.Exit(130) from None
    except Exception as exc:  # noqa: BLE001 - a peer process or machine that went away: say which, not a traceback
        if dist.active() and dist.is_comm_error(exc):
            raise dist.lost(exc) from None
        raise
    finally:
        dist.shutdown()
    if path is not None:  # rank 0 only
        show_metrics(record)
        console.print(f"Result record written to [bold]{path}[/]")
        for name, where in (record.trackers or {}).items():  # where to look at the curves
            console.print(f"{name}: {' run '.join(where[k] for k in ('uri', 'run_id') if where.get(k))}", markup=False, highlight=False)


def interrupted(exc: KeyboardInterrupt, folder: Path | None, processes: int) -> None:
    """After Ctrl-C, say on stderr where the run is, how far it got and the exact command that continues
    it (recbench.interrupt); a silent exit would leave the user to find the run folder alone."""
    from ..interrupt import Interrupted, message, resume_command

    folder = exc.reached.folder if isinstance(exc, Interrupted) else folder
    command = resume_command(sys.argv, folder, processes) if folder is not None else None
    err.print(message(exc, folder, command), style="yellow", markup=False, highlight=False)


def rebuild_ids(overrides: dict) -> bool:
    """Take --rebuild_ids (or a generator's alias of it, see `rename_aliases`) out of `overrides`."""
    rename_aliases(overrides)
    return cfg.coerce("rebuild_ids", overrides.pop("rebuild_ids"), bool) if "rebuild_ids" in overrides else False


def run_control(overrides: dict) -> dict:
    """Take --resume, --eval_only, --checkpoint, --rebuild_ids and --memory_check (how the run is carried
    out, not config values) out of `overrides`."""
    control = {"resume": str(overrides.pop("resume", "")), "checkpoint": overrides.pop("checkpoint", None)}
    control["eval_only"] = cfg.coerce("eval_only", overrides.pop("eval_only", False), bool)
    control["memory_check"] = cfg.coerce("memory_check", overrides.pop("memory_check", True), bool)
    control["rebuild_ids"] = rebuild_ids(overrides)
    if control["checkpoint"] is not None and not control["eval_only"]:
        raise UsageError("--checkpoint is read by --eval_only=true only (to continue training, use --resume).")
    return control


NAMED = ("--plugin", "--dataset", "--tokenizer")  # the options an alias may give a value (api.OptionAlias)


def aliases(registry=None) -> dict:
    """Flag -> api.OptionAlias: the other code bases' flags the installed generators accept."""
    from ..registry import registry as default

    return (registry or default()).option_aliases()


def rename_aliases(overrides: dict, registry=None) -> None:
    """Give the settings that an alias names under another name (e.g. a batch size flag) their own
    name in `overrides`; one setting given under both names is a UsageError."""
    for flag, alias in aliases(registry).items():
        if flag in overrides and alias.option not in NAMED:
            if alias.option in overrides:
                raise UsageError(f"--{flag} and --{alias.option} are the same setting; give one of them.")
            overrides[alias.option] = overrides.pop(flag)


def aliased_options(overrides: dict, plugin: str | None, dataset: str | None, tokenizer: str | None, *,
                    checkpointed: bool = False, registry=None) -> tuple[str | None, str | None, str | None]:
    """Take the generators' option aliases (api.OptionAlias) out of `overrides`: those of --plugin,
    --dataset and --tokenizer give those options their values, the others are renamed
    (`rename_aliases`).

    Returns (plugin, dataset, tokenizer); an alias that contradicts its option is a UsageError. With
    `checkpointed` (--eval_only) plugin and dataset may be missing: the checkpoint names them.
    """
    rename_aliases(overrides, registry)
    known = aliases(registry)
    given = {"--plugin": plugin, "--dataset": dataset, "--tokenizer": tokenizer}
    named = [(flag, alias) for flag, alias in known.items() if alias.option in NAMED]
    for flag, alias in sorted(named, key=lambda item: item[1].switch is not None):  # switches refine the values given
        if flag not in overrides:
            continue
        value, current = str(overrides.pop(flag)).strip(), given[alias.option]
        if alias.switch is not None:
            if value.lower() not in cfg.TRUE | cfg.FALSE:
                raise UsageError(f"--{flag}={value}: expected true or false.")
            if value.lower() in cfg.TRUE:
                if current not in (None, alias.switch, *alias.refines):
                    raise UsageError(f"--{flag}={value} contradicts {alias.option} {current}; give one of them.")
                given[alias.option] = alias.switch
            continue
        value = (alias.values or {}).get(value.lower(), value.lower() if alias.lower else value)
        if current is not None and current.lower() != value.lower():
            raise UsageError(f"--{flag}={value} contradicts {alias.option} {current}; give one of them.")
        given[alias.option] = current if current is not None else value
    for option in ("--plugin", "--dataset"):
        if not given[option] and not checkpointed:
            raise UsageError(missing_option(option, known))
    return given["--plugin"], given["--dataset"], given["--tokenizer"]


def launch(nproc: int) -> int:
    """Re-run this command under torchrun with `nproc` processes; return its exit code."""
    args, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            args.append(arg)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m", "recbench", *args]
    return subprocess.call(cmd)
