"""Which device each tuning worker trains on (`recbench tune --devices`).

A study of N workers on a machine with several GPUs keeps every GPU busy only if each worker has
its own: `--devices cuda:0,cuda:1` hands them out round robin (worker i gets device i mod len), and
`--devices auto` means every visible GPU, one worker each (cpu where torch sees no CUDA device).
The list is checked against the visible devices before any trial starts, so a typo in a GPU number
is a usage error that names the devices there are, not N failed trials. The functions that decide
are pure (the visible devices are an argument), so they are tested without a GPU.
"""

from __future__ import annotations

from ..errors import UsageError


def visible() -> list[str]:
    """The devices torch can train on here: cpu, and cuda:0 ... cuda:N-1."""
    import torch

    return ["cpu", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]


def parse(text: str, seen: list[str]) -> list[str]:
    """The device list of `--devices TEXT` (comma-separated; `auto`: every GPU in `seen`, else cpu),
    each checked against `seen` (what `visible()` returns); a UsageError naming the visible devices
    for one that is not there. `cuda` alone means cuda:0."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise UsageError(f"--devices is empty; give a comma-separated list of devices, or auto. Visible here: {', '.join(seen)}.")
    if names == ["auto"]:
        return [d for d in seen if d.startswith("cuda:")] or ["cpu"]
    devices = ["cuda:0" if name == "cuda" else name for name in names]
    missing = [name for name, device in zip(names, devices) if device not in seen]
    if missing:
        raise UsageError(f"--devices names {', '.join(repr(m) for m in missing)}, which torch does not see here. "
                         f"Visible devices: {', '.join(seen)} (or auto: every GPU, one worker each).")
    return devices


def assign(devices: list[str], jobs: int) -> list[str]:
    """The device of each of `jobs` workers: round robin over `devices`."""
    return [devices[i % len(devices)] for i in range(jobs)]
