"""Training throughput of one generator as planned (benchmarks.gpu_plan): samples/s, peak memory,
FLOPs per sample and model FLOPs utilisation, plus validation users/s for the full-run estimate.

The model and its batches are those of a run (recbench.pipeline.build; the first epoch's batches
drawn as the trainer draws them, benchmarks.train_flops.epoch_one_batches), stepped as the trainer
steps them: bf16 autocast where the run would use it, AdamW fused on CUDA, batches through pinned
memory. The FLOPs of one training step (forward and backward) are counted by
torch.utils.flop_counter.FlopCounterMode on the same device; utilisation is the achieved FLOP
rate over the GPU's dense bf16 peak (benchmarks.gpu_plan.PEAK_BF16_TFLOPS; none on a CPU).
"""

from __future__ import annotations

import resource
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.gpu_plan import peak_tflops, run_spec, setting, validations
from benchmarks.train_flops import epoch_one_batches


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(name: str, device: str, steps: int, tiny: bool, eval_users: int = 512, **overrides) -> dict:
    """One generator's figures (a JSON-ready dict, the summary's `speed` row)."""
    from recbench import pipeline
    from recbench.data import Split
    from recbench.evaluate import evaluate
    from recbench.run_record import device_name
    from recbench.runner import resolve

    dev = torch.device(device)
    resolved = resolve(run_spec(name, device, tiny, **overrides))
    config = resolved.configs["generator"]
    pieces = pipeline.build(resolved, device=dev, seed=0, progress=False)
    model, split = pieces.model.train(), pieces.split
    users, positions, predict, batches = epoch_one_batches(split, config, 0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, fused=True if dev.type == "cuda" else None)
    autocast = config.amp and (dev.type == "cuda" or config.cpu_amp is True)

    def step(i: int) -> int:
        idx = batches[i % len(batches)]
        batch = split.gather(users[idx], positions[idx], trim=config.bucket_pool > 0, predict=None if predict is None else predict[idx]).to(dev)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=autocast):
            loss = model(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return len(idx)

    counter = FlopCounterMode(display=False)
    with counter:
        counted = step(0)
    flops_per_sample = counter.get_total_flops() / counted
    step(1)  # warm-up (kernel selection, the allocator's pools)
    sync(dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    start = time.perf_counter()
    samples = sum(step(2 + i) for i in range(steps))
    sync(dev)
    seconds = time.perf_counter() - start
    samples_per_s = samples / seconds

    small = Split(split.data, split.max_seq_len)
    small.eval_users = split.eval_users[:eval_users]
    ev = evaluate(model, small, "valid", batch_size=config.eval_batch_size, device=dev, progress=False)
    peak_mb = (torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**20
    name_of_device = device_name(dev)
    peak = peak_tflops(name_of_device) if dev.type == "cuda" else None
    achieved = flops_per_sample * samples_per_s / 1e12
    n_valid = len(split.eval_users)
    train_s = len(users) * config.epochs / samples_per_s
    eval_s = n_valid / ev.users_per_s * (validations(config) + 1)  # every validation and the test, at the validation's speed
    return {
        "generator": name, "dataset": resolved.dataset.name, "setting": setting(name, tiny), "device": name_of_device,
        "device_type": dev.type, "params": sum(p.numel() for p in model.parameters()), "batch_size": config.batch_size,
        "steps": steps, "autocast_bf16": autocast, "samples_per_s": round(samples_per_s, 1),
        "samples_per_epoch": int(len(users)), "epoch_s": round(len(users) / samples_per_s, 2),
        "peak_memory_mb": round(peak_mb, 1), "peak_memory_kind": "max allocated (CUDA)" if dev.type == "cuda" else "process peak RSS",
        "flops_per_sample": round(flops_per_sample), "achieved_tflops": round(achieved, 3), "peak_tflops": peak,
        "mfu": round(achieved / peak, 4) if peak else None, "eval_users_per_s": round(ev.users_per_s, 1),
        "epochs": config.epochs, "validations": validations(config),
        "full_run_estimate_s": round(train_s + eval_s, 1),  # without early stopping
    }
