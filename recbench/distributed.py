"""Data-parallel training with PyTorch's own engine (torch.distributed + DistributedDataParallel).

`torchrun --nproc_per_node N -m recbench run ...` (or `recbench run --nproc N ...`, which launches
torchrun) starts N processes; each trains on its shard of every epoch's samples, gradients are
averaged by DDP, evaluation users are split across the processes and their ranks gathered, and
only rank 0 writes checkpoints, logs and the result record. The backend is NCCL on GPUs and gloo
on CPU, so the same code runs (and is tested) on a CPU-only machine.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


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
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world()))
    return device


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
