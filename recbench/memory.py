"""Will the run fit? A size estimate made before any weight is allocated, and a refusal where the
machine cannot hold it.

An absurd setting (`--n_embd=100000`, `--max_seq_len=1000000`, `--n_layer=100000`) used to fail
late or never: an allocator traceback after half a minute, 5 GB and a kill in the middle of
training, or minutes spent building 100,000 layers. Here the model is laid out on PyTorch's `meta`
device (shapes only, no memory) under a time limit, which counts its parameters exactly; training
needs them four times in fp32 (weights, gradients and AdamW's two moments). Activations are
estimated from the config's common fields (batch_size, the history length, n_embd, n_head, n_inner
and every *n_layer): per layer about 8 n_embd + 2 n_inner values per position and two attention
maps of history² per head, the largest terms of a transformer block's forward and backward; full
ranking adds eval_batch_size x items scores. It is an estimate, meant to catch what is off by
orders of magnitude: the run is refused when it exceeds the memory available, and
`--memory_check=false` runs it anyway.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import UsageError

LAYOUT_SECONDS = 3  # a model that takes longer than this just to lay out on the meta device is far too large
BYTES = 4  # fp32


@dataclass
class Estimate:
    params: int | None  # None: the layout did not finish in LAYOUT_SECONDS
    weights_bytes: int  # weights, gradients and optimizer state
    activation_bytes: int  # one training batch's activations (forward and backward)
    eval_bytes: int  # one evaluation batch's scores over all items

    @property
    def total(self) -> int:
        return self.weights_bytes + max(self.activation_bytes, self.eval_bytes)


class LayoutTimeout(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: int):
    """Raise LayoutTimeout in this (main) thread after `seconds`; elsewhere no limit."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGALRM"):
        yield
        return

    def expire(signum, frame):
        raise LayoutTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def at_defaults(config):
    """`config` with every integer setting above its default brought down to it: the same kind of
    model, small, whose layout imports what the meta device needs (seconds, once) outside the limit."""
    smaller = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, int) and not isinstance(value, bool) and isinstance(f.default, int) and 0 < f.default < value:
            smaller[f.name] = f.default
    return dataclasses.replace(config, **smaller)


def count_params(build, config) -> int | None:
    """Parameters of the model `build(config)` makes on the meta device; None past the time limit. A
    model that cannot be laid out there (it computes from real values while building) raises its error."""
    with torch.device("meta"):
        build(at_defaults(config))
    try:
        with time_limit(LAYOUT_SECONDS), torch.device("meta"):
            model = build(config)
    except LayoutTimeout:
        return None
    return sum(p.numel() for p in model.parameters())


def fields_of(config) -> dict:
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)} if dataclasses.is_dataclass(config) else {}


def activations(config, history: int) -> int:
    """Bytes of one training batch's activations, from the config's common fields (module docstring)."""
    values = fields_of(config)
    d = int(values.get("n_embd") or 0)
    if not d:
        return 0
    batch = int(values.get("batch_size") or 1)
    layers = sum(int(v) for k, v in values.items() if k.endswith("n_layer") and isinstance(v, int)) or 1
    inner = int(values.get("n_inner") or 4 * d)
    heads = int(values.get("n_head") or 1)
    per_layer = batch * history * (8 * d + 2 * inner) + 2 * batch * heads * history * history
    return 2 * BYTES * layers * per_layer  # forward values kept for the backward pass, and their gradients


def estimate(build, config, history: int, n_items: int) -> Estimate:
    """`build(config)` makes the model (on the device in effect); `history` is the split's max_seq_len."""
    params = count_params(build, config)
    values = fields_of(config)
    eval_batch = int(values.get("eval_batch_size") or 256)
    return Estimate(params, 4 * BYTES * (params or 0), activations(config, history), eval_batch * (n_items + 1) * BYTES)


def available(device: torch.device) -> tuple[int, str]:
    """(bytes this run may use, where that figure comes from)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free, f"free on {torch.cuda.get_device_name(device)}"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024, "available on this machine (MemAvailable)"
    except OSError:
        pass
    import os

    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "of memory on this machine"


def gb(n: int) -> str:
    return f"{n / 2**30:,.1f} GB"


def largest(config) -> str:
    """The integer settings furthest above their defaults (at least 10x), e.g. "n_layer=100000 (default 2)"."""
    ratios = []
    for f in dataclasses.fields(config) if dataclasses.is_dataclass(config) else ():
        value = getattr(config, f.name)
        if isinstance(value, int) and not isinstance(value, bool) and isinstance(f.default, int) and f.default > 0:
            ratios.append((value / f.default, f"{f.name}={value:,} (default {f.default:,})"))
    big = [text for ratio, text in sorted(ratios, reverse=True)[:3] if ratio >= 10]
    return f" Settings far above their defaults: {', '.join(big)}." if big else ""


def check(found: Estimate, device: torch.device, what: str, config, history: int) -> None:
    """A UsageError where `found` cannot fit `device` (or the model could not even be laid out)."""
    hint = f"{largest(config)} Lower them, or pass --memory_check=false to try anyway."
    if found.params is None:
        raise UsageError(f"{what} takes over {LAYOUT_SECONDS} s just to lay out its layers, without allocating any memory: "
                         f"its config asks for an enormous model.{hint}")
    limit, where = available(device)
    if found.total > limit:
        raise UsageError(
            f"{what} needs about {gb(found.total)}: {found.params:,} parameters ({gb(found.weights_bytes)} with gradients and "
            f"optimizer state), about {gb(found.activation_bytes)} of activations for one training batch of "
            f"{getattr(config, 'batch_size', 1):,} histories of {history:,} items, "
            f"{gb(found.eval_bytes)} of scores for one evaluation batch; {gb(limit)} is {where}.{hint}")
