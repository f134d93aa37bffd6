"""The core trainer: one loop for every gradient-trained generator.

AdamW with the generator's settings, optional linear warmup then cosine decay, gradient clipping,
bf16 autocast on GPU, validation every `eval_every` epochs from `eval_start_epoch` on, early
stopping on the validation metric with `patience`, the best and the last checkpoint in the run
folder, and a JSON-lines log of every epoch.

Resuming gives the same result as an uninterrupted run: the last checkpoint holds the model,
optimizer, scheduler, early-stopping state and every random state, and each epoch's shuffle is
drawn from a generator seeded by (seed, epoch), not from a stream that depends on the past.
A non-finite loss stops the run with a message; the last good checkpoint is kept.
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from . import distributed as dist
from .atomic import replacing
from .api import GeneratorConfig, Recommender
from .config import ranged
from .data import Split, buckets
from .errors import RunError, UsageError
from .evaluate import evaluate


@dataclass
class TrainConfig(GeneratorConfig):
    epochs: int = ranged(200, ge=1)  # upper bound; early stopping usually ends the run sooner
    batch_size: int = ranged(128, ge=1)
    lr: float = ranged(1e-3, gt=0)
    weight_decay: float = ranged(0.0, ge=0)
    beta1: float = ranged(0.9, ge=0, lt=1)
    beta2: float = ranged(0.999, ge=0, lt=1)
    warmup_steps: int = ranged(0, ge=0)  # linear warmup from 0 to lr over this many optimizer steps ...
    warmup_ratio: float = ranged(0.0, ge=0, lt=1)  # ... or over this fraction of the run's planned steps (epochs x batches; not both)
    scheduler: Literal["constant", "cosine"] = "constant"  # after warmup: keep lr, or cosine-decay to 0
    grad_clip: float = ranged(0.0, ge=0)  # max gradient norm (0: no clipping)
    train_sliding: bool = False  # one sample per prefix of the training part, instead of one per user
    min_hist_len: int = ranged(1, ge=1)  # shortest history of a sliding-window sample
    # batches per pool whose samples are sorted by history length (0: plain shuffling). With N > 0,
    # each epoch's shuffled samples are cut into pools of N * batch_size, sorted by length within a
    # pool, cut into batches, the batches shuffled, and each batch trimmed to its longest history
    # (recbench.data.buckets); fewer padding positions, the same samples per epoch
    bucket_pool: int = ranged(0, ge=0)
    eval_every: int = ranged(1, ge=1)  # validate every this many epochs ...
    eval_start_epoch: int = ranged(0, ge=0)  # ... from this epoch on (1-based); a run that ends before it is validated at its last epoch
    patience: int = ranged(10, ge=1)  # stop after this many validations without improvement
    val_metric: str = "ndcg@10"  # a metric, or a weighted sum such as 0.8*ndcg@10+0.2*recall@10
    amp: bool = True  # bf16 autocast on GPU
    # bf16 autocast on CPU too: about 1.8x faster where the CPU has AVX512-BF16 or AMX, several times
    # slower where it has neither; "auto" decides from the CPU (the run prints and records the choice)
    cpu_amp: bool | Literal["auto"] = "auto"
    resume: str = ""  # "true": continue the newest unfinished run of this config and seed; or a run folder
    eval_only: bool = False  # evaluate --checkpoint without training
    checkpoint: str = ""  # a checkpoint file (best.pt / last.pt) for eval_only

    def validate(self) -> None:
        parse_metric(self.val_metric)
        if self.warmup_steps and self.warmup_ratio:
            raise UsageError(f"warmup_steps ({self.warmup_steps}) and warmup_ratio ({self.warmup_ratio}) both set a warmup; "
                             "set the other to 0.")
        if self.eval_only and not self.checkpoint:
            raise UsageError("--eval_only=true needs --checkpoint=PATH (a best.pt or last.pt of an earlier run).")


def check_heads(n_embd: int, n_head: int) -> None:
    """Attention splits n_embd into n_head equal heads: n_head must divide it."""
    if n_embd % n_head:
        raise UsageError(f"n_embd ({n_embd}) must be divisible by n_head ({n_head}); e.g. --n_head="
                         f"{max(h for h in range(1, n_head + 1) if n_embd % h == 0)}.")


def parse_metric(spec: str) -> list[tuple[float, str]]:
    """'0.8*ndcg@10+0.2*recall@10' -> [(0.8, 'ndcg@10'), (0.2, 'recall@10')]."""
    from .metrics import metric_names

    terms = []
    for part in spec.replace(" ", "").split("+"):
        m = re.fullmatch(r"(?:([0-9.]+)\*)?([a-z]+(?:@\d+)?)", part)
        if not m or m.group(2) not in metric_names():
            raise UsageError(f"Config value for 'val_metric' must be a metric or weighted sum of {', '.join(metric_names())}; got {spec!r}.")
        terms.append((float(m.group(1) or 1.0), m.group(2)))
    return terms


def metric_value(metrics: dict[str, float], terms: list[tuple[float, str]]) -> float:
    return sum(w * metrics[name] for w, name in terms)


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


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class TrainResult:
    seconds: float
    epochs: int  # epochs run (including those before a resume)
    best_epoch: int | None
    best_valid: float | None
    stopped: str  # why training ended
    history: list[dict] = field(default_factory=list)


def train(model: Recommender, split: Split, config: TrainConfig, run_dir: Path, *, seed: int, device: torch.device, progress=None,
          on_eval: Callable[[int, float], None] | None = None) -> TrainResult:
    """Train `model` in place; on return it holds the weights of the best validation.

    `on_eval(epoch, value)`, if given, is called on every process after each validation, once the
    epoch's checkpoint and log line are written, with the validation metric (`val_metric`) of that
    epoch; an exception it raises (e.g. a tuning trial being pruned) ends training there.
    """
    terms = parse_metric(config.val_metric)
    users, positions = split.train_positions(config.train_sliding, config.min_hist_len)
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
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr, betas=(config.beta1, config.beta2),
    )
    warmup = warmup_steps(config, total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total_steps, warmup, config.scheduler))
    autocast = config.amp and (device.type == "cuda" or config.cpu_amp is True)
    step_model = DistributedDataParallel(model) if dist.active() else model  # calling it computes the loss
    main = dist.is_main()
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
    dist.barrier()
    last_path, best_path, log_path = run_dir / "last.pt", run_dir / "best.pt", run_dir / "log.jsonl"

    state = {"epoch": 0, "best": None, "best_epoch": None, "bad": 0, "seconds": 0.0, "history": [], "stopped": None}
    if last_path.exists():  # resuming
        ckpt = load_checkpoint(last_path, device, ("model", "optimizer", "scheduler", "rng", "state"),
                               "Start the run over without --resume" + (f", or evaluate its best model so far with --eval_only=true "
                                                                          f"--checkpoint={best_path}" if best_path.exists() else ""))
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        set_rng_state(ckpt["rng"][dist.rank() % len(ckpt["rng"])])
        state = ckpt["state"]
    if main:  # the log holds exactly the epochs of the checkpoint (a kill between log line and checkpoint wrote one more)
        with replacing(log_path) as tmp:
            tmp.write_text("".join(json.dumps(entry) + "\n" for entry in state["history"]), encoding="utf-8")

    progress = progress if main else None
    task = progress.add_task("train", total=config.epochs, completed=state["epoch"], loss=float("nan"), speed=0.0, valid="-") if progress else None
    last_valid = "-"
    for epoch in range(state["epoch"] + 1, config.epochs + 1):
        if state["stopped"]:
            break
        model.train()
        start = time.perf_counter()
        total_loss, n_batches = 0.0, 0
        for idx in epoch_batches(epoch):
            batch = split.gather(users[idx], positions[idx], trim=config.bucket_pool > 0).to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                loss = step_model(batch)
            if dist.any_nonfinite(loss):
                kept = f"The last good checkpoint (epoch {state['epoch']}) is {last_path}." if last_path.exists() else "No checkpoint was written yet."
                raise RunError(
                    f"Training diverged: the loss is {loss.item()} at epoch {epoch}, batch {n_batches + 1}. {kept} "
                    "Try a lower --lr, --grad_clip=1.0 or warmup."
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            total_loss += loss.item()
            n_batches += 1
        seconds = time.perf_counter() - start
        entry = {"epoch": epoch, "loss": total_loss / n_batches, "seconds": round(seconds, 3),
                 "samples_per_s": round(len(users) / seconds, 1), "lr": scheduler.get_last_lr()[0]}
        due = epoch >= config.eval_start_epoch and epoch % config.eval_every == 0
        if due or (epoch == config.epochs and state["best"] is None):  # a run too short to reach eval_start_epoch
            valid = evaluate(model, split, "valid", batch_size=config.eval_batch_size, device=device)
            score = metric_value(valid.metrics, terms)
            entry["valid"] = {config.val_metric: score, **valid.metrics}
            if state["best"] is None or score > state["best"]:
                state.update(best=score, best_epoch=epoch, bad=0)
                if main:
                    save_atomic({"model": model.state_dict(), "epoch": epoch, "valid": score}, best_path)
            else:
                state["bad"] += 1
            if state["bad"] >= config.patience:
                state["stopped"] = f"early stopping: no better {config.val_metric} for {config.patience} validations"
        state["epoch"] = epoch
        state["seconds"] += seconds
        state["history"].append(entry)
        rngs = dist.gather(rng_state())
        if main:
            with open(log_path, "a", encoding="utf-8") as log:
                log.write(json.dumps(entry) + "\n")
            save_atomic({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                         "rng": rngs, "state": state}, last_path)
        dist.barrier()
        if progress:
            if "valid" in entry:
                last_valid = f"{entry['valid'][config.val_metric]:.4f} (best {state['best']:.4f}, epoch {state['best_epoch']})"
            progress.update(task, completed=epoch, loss=entry["loss"], speed=entry["samples_per_s"], valid=last_valid)
        if on_eval is not None and "valid" in entry:
            on_eval(epoch, entry["valid"][config.val_metric])

    if best_path.exists():
        model.load_state_dict(load_checkpoint(best_path, device, ("model",), "Start the run over without --resume")["model"])
    stopped = state["stopped"] or f"reached epochs={config.epochs}"
    return TrainResult(state["seconds"], state["epoch"], state["best_epoch"], state["best"], stopped, state["history"])


def load_checkpoint(path: Path, device, keys: tuple[str, ...], remedy: str) -> dict:
    """A checkpoint the trainer wrote, or a UsageError that names the file, what is wrong and `remedy`."""
    try:
        ckpt = torch.load(path, map_location=device, weights_only=False)
    except Exception as exc:  # noqa: BLE001 - empty, truncated or not a torch file: all mean the same here
        raise UsageError(f"Checkpoint '{path}' cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'damaged'}). "
                         f"{remedy}.") from None
    missing = [k for k in keys if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise UsageError(f"Checkpoint '{path}' is not a recbench training checkpoint (no {', '.join(missing)}). {remedy}.")
    return ckpt


def save_atomic(obj, path: Path) -> None:
    with replacing(path) as tmp:
        torch.save(obj, tmp)


def progress_bar(console=None):
    """Epoch, loss, samples/s and the last validation metric (and the best): a rich bar on a terminal,
    a plain line per epoch when the output goes to a file."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from .progress import bar

    def line(task) -> str:
        return (f"epoch {task.completed:.0f}/{task.total:.0f}: loss {task.fields['loss']:.4f}, {task.fields['speed']:,.0f} samples/s, "
                f"valid {task.fields['valid']}, {task.elapsed:,.0f} s")

    return bar(
        TextColumn("epoch"), MofNCompleteColumn(), BarColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"), TextColumn("{task.fields[speed]:,.0f} samples/s"),
        TextColumn("valid {task.fields[valid]}"), TimeElapsedColumn(),
        line=line, console=console, every=0,
    )


