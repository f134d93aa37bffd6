"""One benchmark run, as a plain function: resolve the config, prepare the data, build and fit the
model, evaluate on validation and test under the fixed protocol, write one result record."""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import torch

from . import config as cfg
from . import distributed as dist
from . import eval_only, imports, paths, pipeline, trackers
from . import registry as plugin_registry
from .atomic import write_text
from .embeddings import EmbeddingConfig
from .errors import RecbenchError, UsageError
from .evaluate import Evaluation, evaluate
from .interrupt import Interrupted, Reached
from .results import records
from .run_folders import is_resumable, lock_run_folder, mark_finished, release_run_folder
from .run_record import build_record, config_fingerprint, device_name, peak_memory_mb, pick_device, resolved_config, setting_label, threads  # noqa: F401
from .train import decide_cpu_amp


@dataclass
class RunSpec:
    generator: str | None  # None only with eval_only: the checkpoint names it
    dataset: str | None  # likewise
    tokenizer: str | None = None
    preset: str | None = None  # one of the generator's named_presets, applied over its dataset preset
    seed: int | None = None  # None: 0, or with eval_only the seed the checkpoint was trained with
    device: str = "auto"
    config_file: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    results_dir: Path | None = None
    tune: dict[str, Any] | None = None  # set by `recbench tune` on the re-run of a study's best trial: the record's `tune` field
    # run control: how the run is carried out, not what it computes (never part of the config)
    resume: str = ""  # "true": continue the newest unfinished run of this config and seed; or a run folder
    eval_only: bool = False  # evaluate `checkpoint` without training
    checkpoint: str | None = None  # a checkpoint file (best.pt / last.pt of a run) for eval_only
    rebuild_ids: bool = False  # build the semantic IDs anew even where cached
    memory_check: bool = True  # refuse a model that cannot fit the device, before it is built (recbench.memory)
    trackers: str | None = None  # experiment trackers, comma-separated (recbench.trackers); None: RECBENCH_TRACKERS
    group: str | None = None  # the trackers' group of this run: a tuning study's name (its trials and best re-run are its runs)
    trial: int | None = None  # a tuning trial's number in that study


@dataclass
class Resolved:
    generator: plugin_registry.Entry
    dataset: plugin_registry.Entry
    configs: dict[str, Any]  # section -> config dataclass instance
    origins: dict[tuple[str, str], str]  # (section, key) -> layer that set it
    tokenizer: plugin_registry.Entry | None = None  # semantic-ID generators: the tokenizer of their IDs
    cpu_amp_auto: str | None = None  # why cpu_amp=auto chose the value the generator config now holds
    spec: RunSpec | None = None  # the spec resolved, with the names and seed an --eval_only checkpoint supplied
    checkpoint: dict | None = None  # with eval_only: the checkpoint file's contents (read once by resolve_checkpoint, weights on the CPU)
    setting: str | None = None  # with eval_only: the checkpoint's setting label, and the evaluation settings that differ


def resolve(spec: RunSpec, registry: plugin_registry.Registry | None = None, *, device: torch.device | None = None,
            saved: dict | None = None) -> Resolved:
    """The run's configs and where each value came from: the spec's layers over the generator's
    defaults and presets. Reads no checkpoint and changes neither argument, so that a caller (a
    tuning plan, a test) gets what the run will compute. `saved` is an --eval_only checkpoint's run
    (eval_only.saved_run): its config is a layer under what the spec sets. `device` is the machine
    (pick_device(spec.device) where not given): cpu_amp=auto becomes its choice, so that every
    fingerprint sees the value the run trains with."""
    registry = registry or plugin_registry.registry()
    if spec.seed is None:
        spec = replace(spec, seed=0)
    if spec.generator is None or spec.dataset is None:
        missing = "--plugin" if spec.generator is None else "--dataset"
        raise UsageError(plugin_registry.missing_option(missing, registry.option_aliases())[:-1]
                         + (f"; checkpoint '{spec.checkpoint}' was written before checkpoints named their run, so name it."
                            if spec.eval_only else "."))
    gen = registry.entry("generator", spec.generator)
    ds = registry.entry("dataset", spec.dataset)
    tok = None
    if gen.obj.inputs == "semantic_ids":
        name = spec.tokenizer or gen.obj.default_tokenizer
        if not name:
            raise UsageError(f"Generator '{gen.name}' consumes semantic IDs and names no default tokenizer; pass --tokenizer "
                             f"(one of {', '.join(registry.names('tokenizer'))}).")
        tok = registry.entry("tokenizer", name)
    elif spec.tokenizer is not None:
        raise UsageError(f"Generator '{gen.name}' ranks item ids and takes no tokenizer (--tokenizer {spec.tokenizer}).")
    origins: dict[tuple[str, str], str] = {}
    run_layers = layers(spec, gen, ds, tok, saved)
    if tok is None and imports.wanted(run_layers):
        raise UsageError(f"Generator '{gen.name}' ranks item ids: --embeddings and --semantic_ids are for the semantic-ID "
                         f"generators ({', '.join(n for n in registry.names('generator') if registry.get('generator', n).inputs == 'semantic_ids')}).")
    configs = cfg.from_layers(sections(gen, ds, tok, imports.wanted(run_layers)), run_layers, origins)
    if imports.SECTION in configs:  # the files' checksums, which the fingerprint hashes (a given one must match)
        configs[imports.SECTION] = imports.with_checksums(configs[imports.SECTION])
    for where in [where for where, origin in origins.items() if origin == GENERATOR_DEFAULT and where[0] == "generator"]:
        del origins[where]  # the generator's own default is no setting of the run
    resolved = Resolved(gen, ds, configs, origins, tok, spec=spec)
    if hasattr(configs["generator"], "cpu_amp"):  # "auto" becomes this machine's choice, so every fingerprint sees it
        resolved.cpu_amp_auto = decide_cpu_amp(configs["generator"], device or pick_device(spec.device))
        if resolved.cpu_amp_auto is not None:
            origins[("generator", "cpu_amp")] = f"auto: {resolved.cpu_amp_auto}"
    return resolved


def sections(gen: plugin_registry.Entry, ds: plugin_registry.Entry, tok: plugin_registry.Entry | None, imported: bool = False) -> dict[str, type]:
    """Section -> config class of the run; a key such as n_digit is set in every section that has it.
    `imported`: a semantic-ID run that reads embeddings or IDs from files has their section too
    (recbench.imports; a run without them has none, so its config is what it always was)."""
    out = {"generator": gen.obj.Config, "dataset": ds.obj.Config}
    if tok is not None:
        out.update(tokenizer=tok.obj.Config, embedding=EmbeddingConfig)
        if imported:
            out[imports.SECTION] = imports.ImportConfig
    return out


def layers(spec: RunSpec, gen: plugin_registry.Entry, ds: plugin_registry.Entry, tok: plugin_registry.Entry | None, saved: dict | None) -> list:
    """(origin, values) from the bottom up: the defaults a generator shares with its tokenizer, its
    dataset preset, an evaluated checkpoint's config, named presets, the config file, the command line."""
    out = []
    if tok is not None:  # a key both have (n_digit) starts at the generator's default, so rpg's 32 digits reach its tokenizer
        shared = set(cfg.field_types(gen.obj.Config)) & set(cfg.field_types(tok.obj.Config))
        defaults = gen.obj.Config()
        out.append((GENERATOR_DEFAULT, {key: getattr(defaults, key) for key in sorted(shared)}))
    preset = gen.obj.presets.get(ds.name)
    if preset:
        out.append((f"preset {gen.name}/{ds.name}", preset))
    if saved is not None:  # the trained model's own config; what is set over it must agree (eval_only.check_configs)
        out.append((f"checkpoint {spec.checkpoint}", saved["flat_config"]))
    for name in preset_names(spec.preset):  # "cpu,ocn": each layered over the one before
        if name not in gen.obj.named_presets:
            names = ", ".join(gen.obj.named_presets) or "none"
            raise UsageError(f"Generator '{gen.name}' has no preset '{name}' (its presets: {names}; several as --preset a,b).")
        out.append((f"preset {gen.name}:{name}", gen.obj.named_presets[name]))
    if spec.config_file:
        out.append((str(spec.config_file), cfg.load_file(spec.config_file)))
    if spec.overrides:
        out.append(("command line", spec.overrides))
    return out


def resolve_checkpoint(spec: RunSpec, registry: plugin_registry.Registry | None = None, *, device: torch.device | None = None) -> Resolved:
    """--eval_only: the run the checkpoint names, resolved, with the checkpoint (read once, weights on
    the CPU) and its setting label. Names, seed and config values the spec leaves out are the
    checkpoint's; one that contradicts it is a UsageError, save the evaluation settings (recbench.eval_only)."""
    from .checkpoints import load

    registry = registry or plugin_registry.registry()
    if not spec.checkpoint:
        raise UsageError("--eval_only=true needs --checkpoint=PATH (a best.pt or last.pt of an earlier run).")
    if spec.resume and spec.resume.lower() not in NO:
        raise UsageError(f"--resume={spec.resume} and --eval_only=true exclude each other: --resume continues training a run "
                         "folder, --eval_only evaluates --checkpoint without training. Give one of them.")
    checkpoint = load(Path(spec.checkpoint), "cpu", ("model",), "Pass a best.pt or last.pt of a run (RECBENCH_HOME/runs/RUN_ID/)")
    saved = eval_only.saved_run(checkpoint, spec.checkpoint)
    if saved is None:  # written before checkpoints named their run: the spec names it
        return replace(resolve(spec, registry, device=device), checkpoint=checkpoint)
    spec = eval_only.fill_spec(spec, saved, registry)
    resolved = resolve(spec, registry, device=device, saved=saved)
    trained_layers = [(f"checkpoint {spec.checkpoint}", saved["flat_config"])]
    trained = cfg.from_layers(sections(resolved.generator, resolved.dataset, resolved.tokenizer, imports.wanted(trained_layers)),
                              trained_layers)
    origins = dict(resolved.origins)
    evaluation = eval_only.check_configs(resolved.configs, trained, origins, spec.checkpoint)
    given = replace(spec, overrides={k: v for k, v in spec.overrides.items() if cfg.normalize_key(k) not in evaluation})
    return replace(resolved, origins=origins, checkpoint=checkpoint,
                   setting=eval_only.setting_label(saved, evaluation, setting_label(given)))


GENERATOR_DEFAULT = "generator default"
NO = ("", "false", "0", "no")  # --resume values that ask for no resume


def checkpoint_meta(spec: RunSpec, resolved: Resolved) -> dict:
    """What every checkpoint of the run carries, so `--eval_only` can rebuild the model from it alone
    and record it as the run it was (recbench.eval_only)."""
    return {"generator": resolved.generator.name, "dataset": resolved.dataset.name,
            "tokenizer": None if resolved.tokenizer is None else resolved.tokenizer.name, "seed": spec.seed,
            "config": {section: cfg.to_dict(c) for section, c in resolved.configs.items()}, "setting": setting_label(spec),
            "config_fingerprint": config_fingerprint(resolved)}  # a resumed last.pt must be of this config (train.check_same_run)


def spec_from_record(record: records.Record, device: str | None = None, results_dir: Path | None = None):
    """The runner.RunSpec that repeats `record`: its plugins, seed and every saved config value."""
    try:
        overrides = cfg.flatten(record.config)
    except ValueError as exc:
        raise UsageError(f"Record '{record.run_id}' cannot be reproduced from its config: {exc}.") from None
    # a setting added after the record was made is in its config already, at the value that behaves as
    # the run did (upgrade.fill_absent)
    return RunSpec(
        generator=record.generator.name,
        dataset=record.dataset.name,
        tokenizer=record.tokenizer.name if record.tokenizer else None,
        seed=record.seed,
        device=device or record.device.type,
        overrides=overrides,
        results_dir=results_dir,
    )


def preset_names(preset: str | None) -> list[str]:
    """`--preset cpu,ocn` -> ['cpu', 'ocn'] (applied in that order)."""
    if preset is None:
        return []
    names = [p.strip() for p in preset.split(",")]
    if not all(names):
        raise UsageError(f"--preset {preset!r}: expected a name or comma-separated names such as cpu,ocn.")
    return names


def run(spec: RunSpec, *, log: Callable[[str], None] = lambda s: None, show_config: Callable[[Resolved], None] | None = None,
        on_eval: Callable[[int, float], None] | None = None, on_run_dir: Callable[[Path], None] | None = None,
        progress: bool = True) -> tuple[records.Record, Path | None]:
    """Run `spec` end to end; return the result record and where it was written.

    Under torchrun every process runs this; only rank 0 prints, writes checkpoints and the record
    (the other ranks return the record and None).

    `on_eval` is passed to the trainer (called after each validation with the epoch and the
    validation metric). `on_run_dir` is called on rank 0 with the run's folder for checkpoints and
    logs as soon as it exists (runs that train), so that a caller can mark it when the run
    ends early (see run_folders.mark_abandoned). `progress` False shows no progress displays.
    Trackers (`spec.trackers`) follow the run.
    """
    results = paths.folder(spec.results_dir, "--results-dir") if spec.results_dir else paths.results_dir()  # before any work
    registry = plugin_registry.registry()
    tracker_entries = trackers.entries(trackers.names(spec.trackers), registry)
    done = fit_and_validate(spec, registry, log=log, show_config=show_config, on_eval=on_eval, on_run_dir=on_run_dir,
                            progress=progress, tracker_entries=tracker_entries)
    with interrupted_after(done.training, done.run_dir, done.resolved.configs["generator"]):
        test = done.evaluate("test")
    record = done.record(test)
    if not done.main:
        return record, None
    if done.tracking:  # told the record's path before it is written, so that the record holds where each tracker keeps the run
        record.trackers = done.tracking.finish(record.metrics.test, str(records.record_path(record.to_dict(), results))) or None
    try:
        path = records.write(record, results)
    except RecbenchError as exc:  # e.g. a full disk: the trained model is still there, unfinished, to be evaluated again
        if done.run_dir is None:
            raise
        raise type(exc)(f"{exc} The trained model is kept in {done.run_dir}: with --resume={done.run_dir} the run evaluates it "
                        "again and writes the record, without training anew.") from None
    done.finish(path)
    return record, path


def validate(spec: RunSpec, *, log: Callable[[str], None] = lambda s: None, on_eval: Callable[[int, float], None] | None = None,
             on_run_dir: Callable[[Path], None] | None = None, progress: bool = True) -> records.Record:
    """A tuning trial: `spec` trained and validated, as `run` does, and no more: the test split is
    never evaluated and no record is written. The record returned has validation metrics only."""
    registry = plugin_registry.registry()
    tracker_entries = trackers.entries(trackers.names(spec.trackers), registry)
    done = fit_and_validate(spec, registry, log=log, on_eval=on_eval, on_run_dir=on_run_dir, progress=progress,
                            tracker_entries=tracker_entries)
    record = done.record(None)
    if done.main:
        if done.tracking:  # the trial's curves and validation, without a record
            done.tracking.finish({}, None)
        done.finish(None)
    return record


@dataclass
class Validated:
    """A run trained (or its checkpoint loaded, or its model fitted) and validated: what the test
    evaluation and the record need."""

    spec: RunSpec
    resolved: Resolved
    pieces: pipeline.Pieces
    device: torch.device
    main: bool  # rank 0 (or the only process)
    show: bool  # progress displays shown
    run_id: str
    run_dir: Path | None  # the run folder (runs that train)
    tracking: trackers.Trackers
    training: Any  # train.TrainResult, or None for a run that does not train
    train_seconds: float
    valid: Evaluation | None  # None only until fit_and_validate ranks the validation users
    id_of: Any  # the items' semantic-ID numbers, for the ID-level metrics (or None)

    def evaluate(self, part: str) -> Evaluation:
        gcfg = self.resolved.configs["generator"]
        return evaluate(self.pieces.model, self.pieces.split, part, batch_size=getattr(gcfg, "eval_batch_size", 256),
                        device=self.device, id_of=self.id_of, progress=self.show)

    def record(self, test: Evaluation | None) -> records.Record:
        p, training, run_dir = self.pieces, self.training, self.run_dir
        record = build_record(self.run_id, self.spec, self.resolved, p.data, p.split, p.model, self.device, self.valid, test,
                              self.train_seconds, p.semantic_ids)
        if self.resolved.cpu_amp_auto is not None:
            record.train.cpu_amp_auto = self.resolved.cpu_amp_auto  # why cpu_amp=auto chose the value in the config
        if training:
            record.train.epochs, record.train.best_epoch = training.epochs, training.best_epoch
            record.train.best_valid, record.train.stopped = training.best_valid, training.stopped
            record.checkpoints = records.Checkpoints(best=str(run_dir / "best.pt"), last=str(run_dir / "last.pt"),
                                                     log=str(run_dir / "log.jsonl"))
            record.train.history = training.history
        return record

    def finish(self, path: Path | None) -> None:
        """Rank 0: the run folder says the run ended (and which record it wrote), and is released."""
        if self.run_dir is not None:
            mark_finished(self.run_dir, path)
            release_run_folder(self.run_dir)


def fit_and_validate(spec: RunSpec, registry: plugin_registry.Registry, *, log: Callable[[str], None],
                     show_config: Callable[[Resolved], None] | None = None, on_eval: Callable[[int, float], None] | None = None,
                     on_run_dir: Callable[[Path], None] | None = None, progress: bool = True,
                     tracker_entries=()) -> Validated:
    """The part of a run that `run` and `validate` share, top to bottom: the machine and the config,
    the data and the model, the run folder, training (or the checkpoint's weights, or fitting), and
    the validation of the model the run keeps."""
    device = pick_device(spec.device)  # the machine, decided once: cpu_amp=auto follows it (resolve)
    resolved = resolve_checkpoint(spec, registry, device=device) if spec.eval_only else resolve(spec, registry, device=device)
    spec = resolved.spec  # with eval_only: the checkpoint's names and seed where the spec left them out
    device = dist.init(device)
    main = dist.is_main()
    show = main and progress
    gen, ds = resolved.generator, resolved.dataset
    gcfg = resolved.configs["generator"]
    if not main:
        log = lambda s: None  # noqa: E731
    elif show_config:
        show_config(resolved)
    if resolved.cpu_amp_auto is not None and device.type == "cpu":
        log(f"bf16 autocast on CPU: {'on' if gcfg.cpu_amp else 'off'} (cpu_amp=auto: {resolved.cpu_amp_auto})")

    pieces = pipeline.build(resolved, device=device, seed=spec.seed, rebuild_ids=spec.rebuild_ids, log=log, progress=show,
                            memory_check=spec.memory_check)
    split, sids, model = pieces.split, pieces.semantic_ids, pieces.model
    if model.trainable and not spec.eval_only:
        run_id, run_dir = dist.broadcast(run_folder(spec, resolved, log=log) if main else None)
        if main:
            lock_run_folder(run_dir)
        if main and on_run_dir is not None:
            on_run_dir(run_dir)
    else:
        run_id, run_dir = records.run_id(gen.name, ds.name, spec.seed), None
    tracking = trackers.Trackers(tracker_entries if main else ())
    tracking.start(track_info(run_id, run_dir, spec, resolved), trackers.params(resolved, spec))
    training = None
    id_of = sids.id_numbers() if sids is not None and sids.raw_codes is not None else None  # the ID-level metrics too (collisions kept)
    t1 = time.perf_counter()
    if spec.eval_only:
        load_weights(model, resolved)
    elif model.trainable:
        from .train import progress_bar, train

        with progress_bar() if show else contextlib.nullcontext() as display:
            training = train(model, split, gcfg, run_dir, seed=spec.seed, device=device, progress=display, on_eval=on_eval,
                             meta=checkpoint_meta(spec, resolved), log=log, tracker=tracking, id_of=id_of)
        best = (f"best validation {gcfg.val_metric} = {training.best_valid:.4f} at epoch {training.best_epoch}"
                if training.best_valid is not None else "no validation")
        log(f"training stopped after {training.epochs} epochs ({training.stopped}); {best}")
    else:
        model.fit(split)
    train_seconds = training.seconds if training else time.perf_counter() - t1
    valid = training.best_validation if training is not None else None  # the trainer ranked the best weights already
    done = Validated(spec, resolved, pieces, device, main, show, run_id, run_dir, tracking, training, train_seconds, valid, id_of)
    if valid is None:  # eval-only, a model without training, or a best epoch validated before a resume
        with interrupted_after(training, run_dir, gcfg):
            done.valid = done.evaluate("valid")
    return done


def load_weights(model, resolved: Resolved) -> None:
    """--eval_only: the checkpoint's weights (read once by resolve_checkpoint), copied to the model's device."""
    try:
        model.load_state_dict(resolved.checkpoint["model"])
    except RuntimeError as exc:
        raise UsageError(
            f"--checkpoint '{resolved.spec.checkpoint}' does not fit {resolved.generator.name} with this config (was it trained "
            f"with other settings, e.g. n_embd or max_seq_len?): {str(exc).splitlines()[0]}"
        ) from exc


def track_info(run_id: str, run_dir: Path | None, spec: RunSpec, resolved: Resolved):
    """What the run's trackers are told about it (recbench.api.RunInfo)."""
    from .api import RunInfo

    return RunInfo(run_id=run_id, generator=resolved.generator.name, dataset=resolved.dataset.name,
                   tokenizer=None if resolved.tokenizer is None else resolved.tokenizer.name, seed=spec.seed,
                   setting=resolved.setting or setting_label(spec), folder=None if run_dir is None else str(run_dir),
                   group=spec.group, trial=spec.trial)


@contextlib.contextmanager
def interrupted_after(training, run_dir: Path | None, config):
    """Ctrl-C after training (while evaluating) leaves as an Interrupted that says training had ended,
    so that the message offers --resume, which evaluates the trained model without training again."""
    try:
        yield
    except KeyboardInterrupt as exc:
        if training is None or run_dir is None or isinstance(exc, Interrupted):
            raise
        raise Interrupted(Reached(run_dir, training.epochs, config.epochs, config.val_metric, training.best_valid,
                                   training.best_epoch, trained=True)) from None


def run_folder(spec: RunSpec, resolved: Resolved, log: Callable[[str], None] = lambda s: None) -> tuple[str, Path]:
    """(run id, folder for checkpoints and logs): a new one, or the one `--resume` continues (`log`
    says which, or that there was nothing to resume and a new run starts). A folder named by
    --resume=FOLDER that is not an unfinished run of this config and seed is an error."""
    gen, ds = resolved.generator.name, resolved.dataset.name
    identity = {"generator": gen, "dataset": ds, "config_fingerprint": config_fingerprint(resolved), "seed": spec.seed}
    config, tokenizer = resolved_config(resolved), resolved.tokenizer.name if resolved.tokenizer else None

    def resumable(folder: Path) -> bool:
        return is_resumable(folder, identity, config, tokenizer)
    resume = spec.resume
    runs = paths.home() / "runs"
    if resume and resume.lower() not in NO:
        if resume.lower() in ("true", "1", "yes", "auto"):
            candidates = sorted(
                (d for d in runs.glob(f"{ds}__{gen}__*") if resumable(d)), key=lambda d: d.name, reverse=True
            )
            folder = candidates[0] if candidates else None
            if folder is None:
                log(f"--resume: nothing to resume (no unfinished run of {gen} on {ds} with this config and seed {spec.seed} "
                    f"under {runs}); starting a new run.")
        else:
            folder = Path(resume)
            if not resumable(folder):
                raise UsageError(f"--resume={resume}: not an unfinished run folder of {gen} on {ds} with this config and seed.")
        if folder is not None:
            folder = Path(os.path.abspath(folder))
            log(f"--resume: continuing the run in {folder}" + ("" if (folder / "last.pt").exists() else
                                                               " (no epoch of it was saved: training starts at epoch 1)"))
            return resumed_run_id(folder, runs, records.run_id(gen, ds, spec.seed)), folder
    base = run_id = records.run_id(gen, ds, spec.seed)
    runs.mkdir(parents=True, exist_ok=True)
    for n in range(2, 1000):  # two runs started in the same millisecond (tune workers) each get their own folder
        try:
            (runs / run_id).mkdir()
            break
        except FileExistsError:
            run_id = f"{base}-{n}"
    folder = runs / run_id
    write_text(folder / "run.json", json.dumps(identity, indent=1))
    return run_id, folder


def resumed_run_id(folder: Path, runs: Path, new_id: str) -> str:
    """The run id (and record name) of a resumed run: its folder's name where that is RUNS/NAME, else
    `new_id`. A folder elsewhere may have any name, and a record named '.hidden.json' would be a file
    the leaderboard never reads; the record names such a folder in its checkpoints."""
    inside = Path(os.path.abspath(folder)).parent == Path(os.path.abspath(runs))
    return folder.name if inside and not folder.name.startswith(".") else new_id
