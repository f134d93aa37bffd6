"""The core trainer: one loop for every gradient-trained generator.

AdamW (or Adafactor) with the generator's settings, optional linear warmup then cosine decay, gradient clipping,
bf16 autocast on GPU, validation every `eval_every` epochs from `eval_start_epoch` on, early
stopping on the validation metric with `patience`, the best and the last checkpoint in the run
folder, and a JSON-lines log of every epoch.

On a GPU the step does not wait for the device: batches reach it through pinned memory without
blocking (Batch.to), AdamW runs its fused kernel, and the losses are read back once per interval
(recbench.step_losses); `compile` runs the step through torch.compile. On the CPU the loop is
step for step what it always was, so runs stay bit-identical.

Resuming gives the same result as an uninterrupted run: the last checkpoint holds the model,
optimizer, scheduler, early-stopping state and every random state, and each epoch's shuffle is
drawn from a generator seeded by (seed, epoch), not from a stream that depends on the past.
Checkpoints hold tensors and plain data only and are read without running code (recbench.checkpoints);
a last.pt written by another run (another config or seed) is refused, naming the file.
A non-finite loss stops the run with a message; the last good checkpoint is kept.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from . import checkpoints, rng
from . import distributed as dist
from .api import Recommender, TrainConfig
from .atomic import appending, replacing
from .data import Split, buckets
from .errors import RunError, UsageError
from .evaluate import Evaluation, evaluate
from .interrupt import Interrupted, Reached
from .metrics import metric_value, parse_metric
from .step_losses import StepLosses, read_every


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "cosine":
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return 1.0


def warmup_steps(config: TrainConfig, total_steps: int) -> int:
    """The run's warmup in optimizer steps (`warmup_steps`, or `warmup_ratio` of the planned steps);
    a warmup that would not end before the last planned step is an error."""
    warmup = config.warmup_steps or round(config.warmup_ratio * total_steps)
    if warmup and warmup >= total_steps:
        raise UsageError(
            f"warmup_steps={warmup} is not shorter than the run's {total_steps} planned optimizer steps (epochs={config.epochs}): "
            "the learning rate would never reach lr. Set fewer --warmup_steps, or --warmup_steps=0 --warmup_ratio=0.05 "
            "(a fraction of the planned steps)."
        )
    return warmup


def bf16_cpu() -> tuple[bool, str]:
    """Whether this CPU runs bf16 matrix products natively (AVX512-BF16 or AMX), and the reason."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return False, "no /proc/cpuinfo flags to read: assumed without native bf16"
    found = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
    if found:
        return True, f"the CPU has {' and '.join(found)}"
    return False, "the CPU has neither avx512_bf16 nor amx_bf16 (bf16 autocast would be several times slower)"


def decide_cpu_amp(config: TrainConfig, device: torch.device) -> str | None:
    """Replace cpu_amp="auto" by the choice for `device`; return why (None when it was set explicitly)."""
    if config.cpu_amp != "auto":
        return None
    if device.type != "cpu":
        config.cpu_amp = False
        return f"not used on {device.type}"
    config.cpu_amp, why = bf16_cpu()
    return why


@dataclass
class TrainResult:
    seconds: float
    epochs: int  # epochs run (including those before a resume)
    best_epoch: int | None
    best_valid: float | None
    stopped: str  # why training ended
    history: list[dict] = field(default_factory=list)
    # the best epoch's validation where this process ranked it (None where that epoch came before a
    # resume): the weights the trainer returns, ranked by the runner's own code, so the runner reuses
    # it instead of ranking every validation user again
    best_validation: Evaluation | None = None


def train(model: Recommender, split: Split, config: TrainConfig, run_dir: Path, *, seed: int, device: torch.device, progress=None,
          on_eval: Callable[[int, float], None] | None = None, meta: dict | None = None,
          log: Callable[[str], None] = lambda s: None, tracker=None, id_of: np.ndarray | None = None) -> TrainResult:
    """Train `model` in place; on return it holds the weights of the best validation.

    `progress` (a display of recbench.train_progress, or None) shows the epochs, the steps within
    each, and the validations' ranking. `log` is told what a resumed run found in its last checkpoint.
    A KeyboardInterrupt (Ctrl-C) leaves as recbench.interrupt.Interrupted, which says which epoch the
    last checkpoint holds.

    `meta` (the run's generator, dataset, tokenizer, seed and resolved config) goes into every
    checkpoint as "run", so that a checkpoint alone can rebuild its model (`--eval_only`).

    `on_eval(epoch, value)`, if given, is called on every process after each validation, once the
    epoch's checkpoint and log line are written, with the validation metric (`val_metric`) of that
    epoch; an exception it raises (e.g. a tuning trial being pruned) ends training there.

    `tracker` (a recbench.trackers.Trackers, or None) is told the loss and learning rate after every
    optimizer step, numbered over the whole run, and each epoch's history entry; rank 0 only.

    `id_of` is passed to every validation (recbench.evaluate), so that the best epoch's validation
    (TrainResult.best_validation) holds the ID-level metrics the record reports.
    """
    if not isinstance(config, TrainConfig):
        raise UsageError(f"{type(model).__name__} trains through loss(), but its config ({type(config).__name__}) is not a "
                         "recbench.api.TrainConfig, which holds the trainer's settings (epochs, batch_size, lr, ...): "
                         f"declare `class {type(config).__name__}(TrainConfig)`, or set `trainable = False` and implement fit().")
    terms = parse_metric(config.val_metric)
    if config.train_windows and not config.train_sliding:
        users, positions, predict = split.window_positions()
    else:
        (users, positions), predict = split.train_positions(config.train_sliding, config.min_hist_len), None
    if len(users) == 0:
        raise RunError("No training samples: every user's training part is shorter than min_hist_len.")
    # every rank walks its shard of one shared permutation per epoch, seeded by (seed, epoch)
    sampler = DistributedSampler(range(len(users)), num_replicas=dist.world(), rank=dist.rank(), shuffle=True, seed=seed)
    local_batch = math.ceil(config.batch_size / dist.world())  # the global batch stays config.batch_size
    lengths = split.history_lengths(users, positions) if config.bucket_pool else None

    def epoch_batches(epoch: int) -> list[np.ndarray]:
        """This rank's batches of `epoch` (indices of samples), in training order; seeded by (seed, epoch) only."""
        if config.bucket_pool:  # length-bucketed global batches; each rank takes its share of every one
            return [buckets.rank_share(b, dist.rank(), dist.world())
                    for b in buckets.epoch_batches(lengths, config.batch_size, config.bucket_pool, seed, epoch)]
        sampler.set_epoch(epoch)
        order = np.fromiter(sampler, dtype=np.int64)
        return [order[i : i + local_batch] for i in range(0, len(order), local_batch)]

    # the optimizer steps of an epoch: one per (global) batch
    steps_per_epoch = math.ceil(len(users) / config.batch_size) if config.bucket_pool else math.ceil(len(sampler) / local_batch)
    total_steps = steps_per_epoch * config.epochs
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if config.optimizer == "adafactor":
        optimizer = torch.optim.Adafactor(groups, lr=config.lr)
    else:
        # the fused CUDA kernel: one launch for every parameter's update (CUDA parameters only)
        fused = all(p.is_cuda for group in groups for p in group["params"]) and device.type == "cuda"
        optimizer = torch.optim.AdamW(groups, lr=config.lr, betas=(config.beta1, config.beta2), fused=fused or None)
    warmup = warmup_steps(config, total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total_steps, warmup, config.scheduler))
    autocast = config.amp and (device.type == "cuda" or config.cpu_amp is True)
    step_model = DistributedDataParallel(model) if dist.active() else model  # calling it computes the loss
    if config.compile:  # compiled on its first batch; the weights stay `model`'s, so checkpoints are unchanged
        step_model = torch.compile(step_model)
    main = dist.is_main()
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
    dist.barrier()
    last_path, best_path, log_path = run_dir / "last.pt", run_dir / "best.pt", run_dir / "log.jsonl"

    state = {"epoch": 0, "best": None, "best_epoch": None, "bad": 0, "seconds": 0.0, "history": [], "stopped": None}
    if last_path.exists():  # resuming
        remedy = "Start the run over without --resume" + (f", or evaluate its best model so far with --eval_only=true "
                                                          f"--checkpoint={best_path}" if best_path.exists() else "")
        ckpt = load_checkpoint(last_path, device, ("model", "optimizer", "scheduler", "rng", "state"), remedy)
        check_same_run(ckpt.get("run"), meta, last_path, remedy)
        try:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            rng.restore(ckpt["rng"][dist.rank() % len(ckpt["rng"])])
            state = {**state, **ckpt["state"]}
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UsageError(f"Checkpoint '{last_path}' does not fit this run ({type(model).__name__} with this config): "
                             f"{type(exc).__name__}: {first}. {remedy}.") from None
        log(resumed(state, config, last_path))
    if main:  # the log holds exactly the epochs of the checkpoint (a kill between log line and checkpoint wrote one more)
        with replacing(log_path) as tmp:
            tmp.write_text("".join(json.dumps(entry) + "\n" for entry in state["history"]), encoding="utf-8")

    progress = progress if main else None
    tracker = tracker if main else None
    task = progress.add_task("train", total=config.epochs, completed=state["epoch"], metric=config.val_metric,
                             epoch=min(state["epoch"] + 1, config.epochs), step=0, steps=steps_per_epoch, loss=None,
                             valid=last_validation(state, config.val_metric),
                             visible=state["epoch"] < config.epochs and not state["stopped"]) if progress else None
    saved = dict(state)  # what last.pt holds: an interrupted run continues from there

    def diverged(loss: float, epoch: int, batch: int) -> RunError:
        kept = f"The last good checkpoint (epoch {state['epoch']}) is {last_path}." if last_path.exists() else "No checkpoint was written yet."
        where = f"batch {batch}" if batch else "a batch of another process"
        return RunError(f"Training diverged: the loss is {loss} at epoch {epoch}, {where}. {kept} Try a lower --lr, --grad_clip=1.0 or warmup.")

    def read_losses(losses: StepLosses, epoch: int, samples: int) -> None:
        """The pending steps' losses into the epoch's running loss, the trackers and the display: one wait for the device."""
        steps, bad = losses.read()
        if bad is not None:
            raise diverged(next((value for batch, value, _ in steps if batch == bad), float("nan")), epoch, bad)
        if tracker is not None:
            for batch, value, lr in steps:
                tracker.step((epoch - 1) * steps_per_epoch + batch, value, lr)
        if progress and steps:
            progress.update(task, step=steps[-1][0], loss=losses.total / steps[-1][0], samples=samples)

    best_validation = None
    try:
        for epoch in range(state["epoch"] + 1, config.epochs + 1):
            if state["stopped"]:
                break
            model.train()
            start = time.perf_counter()
            n_batches, samples = 0, 0
            if progress:
                progress.update(task, epoch=epoch, step=0, loss=None, samples=0, started=time.monotonic(), ended=None)
            losses = StepLosses(read_every(device))
            for idx in epoch_batches(epoch):
                batch = split.gather(users[idx], positions[idx], trim=config.bucket_pool > 0,
                                     predict=None if predict is None else predict[idx]).to(device)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                    loss = step_model(batch)
                if losses.checks_each_step and dist.any_nonfinite(loss):
                    raise diverged(loss.item(), epoch, n_batches + 1)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                scheduler.step()
                n_batches += 1
                samples += len(idx) * dist.world()
                losses.add(n_batches, loss, scheduler.get_last_lr()[0])
                if losses.due():
                    read_losses(losses, epoch, samples)
            read_losses(losses, epoch, samples)
            seconds = time.perf_counter() - start
            if progress:
                progress.update(task, ended=time.monotonic())
            entry = {"epoch": epoch, "loss": losses.total / n_batches, "seconds": round(seconds, 3),
                     "samples_per_s": round(len(users) / seconds, 1), "lr": scheduler.get_last_lr()[0]}
            due = epoch >= config.eval_start_epoch and epoch % config.eval_every == 0
            if due or (epoch == config.epochs and state["best"] is None):  # a run too short to reach eval_start_epoch
                valid = evaluate(model, split, "valid", batch_size=config.eval_batch_size, device=device, id_of=id_of,
                                 progress=progress or False)
                score = metric_value(valid.metrics, terms)
                entry["valid"] = {config.val_metric: score, **valid.metrics}
                if state["best"] is None or score > state["best"]:
                    state.update(best=score, best_epoch=epoch, bad=0)
                    best_validation = valid
                    if main:
                        save_atomic({"model": model.state_dict(), "epoch": epoch, "valid": score, "run": meta}, best_path)
                else:
                    state["bad"] += 1
                if state["bad"] >= config.patience:
                    state["stopped"] = f"early stopping: no better {config.val_metric} for {config.patience} validations"
            state["epoch"] = epoch
            state["seconds"] += seconds
            state["history"].append(entry)
            rngs = dist.gather(rng.state())
            if main:
                with appending(log_path) as log_file:  # never through a link planted in the run folder
                    log_file.write(json.dumps(entry) + "\n")
                save_atomic({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                             "rng": rngs, "state": state, "run": meta}, last_path)
                if tracker is not None:
                    tracker.epoch(entry)
            saved = {**state, "history": None}
            dist.barrier()
            if progress:
                progress.update(task, completed=epoch, valid=last_validation(state, config.val_metric), refresh=True)
            if on_eval is not None and "valid" in entry:
                on_eval(epoch, entry["valid"][config.val_metric])

        if best_path.exists():
            model.load_state_dict(load_checkpoint(best_path, device, ("model",), "Start the run over without --resume")["model"])
    except KeyboardInterrupt as exc:
        if isinstance(exc, Interrupted):
            raise
        raise Interrupted(Reached(run_dir, saved["epoch"], config.epochs, config.val_metric, saved["best"], saved["best_epoch"],
                                   trained=bool(saved["stopped"]) or saved["epoch"] >= config.epochs)) from None
    stopped = state["stopped"] or f"reached epochs={config.epochs}"
    return TrainResult(state["seconds"], state["epoch"], state["best_epoch"], state["best"], stopped, state["history"],
                       best_validation)


load_checkpoint = checkpoints.load


def save_atomic(obj, path: Path) -> None:
    checkpoints.save(obj, path)


def check_same_run(saved: dict | None, meta: dict | None, path: Path, remedy: str) -> None:
    """A last.pt that another run wrote (another generator, dataset, seed or config fingerprint) is a
    UsageError naming the file and the first values that differ. Configs are compared by their
    fingerprint, as run folders are; a checkpoint written before fingerprints hashed the whole config
    holds one of the earlier scheme, which counts too (records.same_config). A checkpoint without a
    fingerprint is compared by name and seed."""
    from .results.records import same_config

    if not isinstance(saved, dict) or not isinstance(meta, dict):
        return
    saved, meta = json.loads(json.dumps(saved, default=str)), json.loads(json.dumps(meta, default=str))  # tuples and lists alike
    differ = [f"{key} {saved[key]!r} there, {meta[key]!r} here" for key in ("generator", "dataset", "tokenizer", "seed")
              if key in saved and key in meta and saved[key] != meta[key]]
    stored = saved.get("config_fingerprint", meta.get("config_fingerprint"))
    if stored != meta.get("config_fingerprint") and not (
            isinstance(meta.get("config"), dict) and same_config(stored, meta["config"], meta.get("tokenizer"))):
        for section, values in (meta.get("config") or {}).items():
            theirs = (saved.get("config") or {}).get(section) or {}
            differ += [f"{key}={theirs[key]!r} there, {value!r} here" for key, value in values.items() if key in theirs and theirs[key] != value]
        differ = differ or [f"config fingerprint {saved['config_fingerprint']} there, {meta['config_fingerprint']} here"]
    if differ:
        more = f" and {len(differ) - 3} more" if len(differ) > 3 else ""
        raise UsageError(f"Checkpoint '{path}' was written by another run ({'; '.join(differ[:3])}{more}). {remedy}.")


def progress_bar(console=None):
    """The training display (recbench.train_progress): epochs, the steps of the current one with the
    running loss, samples/s and time left, and the named validation metric with the best so far."""
    from .train_progress import display

    return display(console)


def last_validation(state: dict, metric: str) -> dict | None:
    """The last validation in `state`'s history, with the best so far, for the display; None before the first."""
    for entry in reversed(state["history"]):
        if "valid" in entry:
            return {"value": entry["valid"][metric], "epoch": entry["epoch"], "best": state["best"], "best_epoch": state["best_epoch"]}
    return None


def resumed(state: dict, config: TrainConfig, path: Path) -> str:
    """What a resumed run found in its last checkpoint, and where it goes on from."""
    best = (f"; best validation {config.val_metric} so far = {state['best']:.4f} at epoch {state['best_epoch']}"
            if state["best"] is not None else "; no validation yet")
    found = f"Its last checkpoint ({path.name}) holds epoch {state['epoch']} of {config.epochs}{best}."
    if state["stopped"] or state["epoch"] >= config.epochs:
        return f"{found} Training had ended ({state['stopped'] or f'reached epochs={config.epochs}'}): evaluating its best model."
    return f"{found} Training continues with epoch {state['epoch'] + 1}."


