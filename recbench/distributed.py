"""Data-parallel training with PyTorch's own engine (torch.distributed + DistributedDataParallel).

`torchrun --nproc_per_node N -m recbench run ...` (or `recbench run --nproc N ...`, which launches
torchrun) starts N processes; each trains on its shard of every epoch's samples, gradients are
averaged by DDP, evaluation users are split across the processes and their ranks gathered, and
only rank 0 writes checkpoints, logs and the result record. The backend is NCCL on GPUs and gloo
on CPU, so the same code runs (and is tested) on a CPU-only machine.

Across machines (`torchrun --nnodes M --rdzv_backend c10d --rdzv_endpoint HOST:PORT ...` on each) the
processes are the same, only further apart. A machine that dies or drops off the network must end
the run on the others with a message, not leave them waiting: a collective whose peer is gone fails
at once (the connection is reset) or after RECBENCH_DIST_TIMEOUT seconds (the process group's
timeout), and `lost` turns that error into one that names the rank, host and address that went away.
"""

from __future__ import annotations

import os
import re
import socket
from datetime import timedelta

import torch
import torch.distributed as dist

from .errors import RunError, UsageError

TIMEOUT_ENV = "RECBENCH_DIST_TIMEOUT"
DEFAULT_TIMEOUT = 1800  # seconds; torch's own default for gloo: rank 0 may work alone (the test ranking, the record) that long

_peers: list[tuple[str, str]] = []  # (hostname, address) of every rank, gathered when the group is joined


def launched() -> bool:
    """True in a process started by torchrun with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def init(device: torch.device) -> torch.device:
    """Join the process group; on GPUs, each process takes the GPU of its local rank."""
    if not launched() or active():
        return device
    wait = timedelta(seconds=timeout())
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", timeout=wait)
    else:
        dist.init_process_group("gloo", timeout=wait)
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", world()))))
    _peers[:] = gather((socket.gethostname(), own_address()))
    return device


def timeout() -> float:
    """Seconds a collective waits for the other processes before it fails (RECBENCH_DIST_TIMEOUT)."""
    raw = os.environ.get(TIMEOUT_ENV, str(DEFAULT_TIMEOUT))
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise UsageError(f"{TIMEOUT_ENV}={raw!r}: expected a number of seconds > 0 (default {DEFAULT_TIMEOUT}).")
    return value


def own_address() -> str:
    """The address this process reaches rank 0's machine from (no packet is sent): the one its peers see."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((os.environ.get("MASTER_ADDR", "127.0.0.1"), int(os.environ.get("MASTER_PORT", "29500"))))
            return probe.getsockname()[0]
        except OSError:
            return "unknown"


def is_comm_error(exc: BaseException) -> bool:
    """Whether `exc` is a collective that failed because a peer went away or did not answer in time."""
    if isinstance(exc, dist.DistError):
        return True
    return isinstance(exc, RuntimeError) and bool(re.search(r"gloo|NCCL|c10d|Connection (reset|closed|refused)|Timed out", str(exc)))


def lost(exc: BaseException) -> RunError:
    """A RunError for a failed collective: which rank (host, address) the error's message names, or
    that none answered within the timeout."""
    text = str(exc)
    me = f"rank {rank()} of {world()}" + (f" ({_peers[rank()][0]})" if len(_peers) > rank() else "")
    named = sorted({r for r, (host, address) in enumerate(_peers) if r != rank() and re.search(rf"\b{re.escape(address)}\b|\b{re.escape(host)}\b", text)})
    if named:
        who = ", ".join(f"rank {r} ({_peers[r][0]}, {_peers[r][1]})" for r in named)
        what = f"lost {who}: its process or machine ended, or the network to it failed"
    elif re.search(r"timed out|timeout", text, re.IGNORECASE):
        others = [f"rank {r} ({host}, {address})" for r, (host, address) in enumerate(_peers) if r != rank()]
        who = others[0] if len(others) == 1 else f"one of {', '.join(others)}" if others else "the other processes"
        what = f"got no answer from {who} within {timeout():.0f} s ({TIMEOUT_ENV}): its process or machine stopped, or the network to it failed"
    else:
        what = "lost another process of the group"
    first = " ".join(text.split())  # gloo's message spans lines and starts with its source file: [.../pair.cc:537]
    first = re.sub(r"^\[[^\]]*\.(cc|cpp|h):\d+\]\s*", "", first) or type(exc).__name__
    return RunError(f"Data-parallel training stopped: {me} {what}. The collective's error: {first[:400]}")


def shutdown() -> None:
    if active():
        dist.destroy_process_group()


def barrier() -> None:
    if active():
        dist.barrier()


def broadcast(obj):
    """rank 0's `obj` on every rank."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(obj) -> list:
    """Every rank's `obj`, in rank order, on every rank."""
    if not active():
        return [obj]
    out = [None] * world()
    dist.all_gather_object(out, obj)
    return out


def any_nonfinite(value: torch.Tensor) -> bool:
    """Whether `value` is NaN/inf on any rank (every rank gets the same answer, so none hangs)."""
    flag = (~torch.isfinite(value.detach())).float().reshape(1)
    if active():
        if dist.get_backend() == "gloo":  # NCCL reduces GPU tensors only, gloo CPU ones
            flag = flag.cpu()
        dist.all_reduce(flag)
    return bool(flag.item() > 0)
