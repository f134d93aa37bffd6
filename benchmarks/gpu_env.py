"""The machine a GPU check ran on, as JSON: GPUs, driver, torch, CUDA, bf16 and TF32, the CPU, threads.

Speeds mean nothing without the machine: summary.json carries this next to every figure, and a
record's device name comes from the same torch calls (recbench.run_record.device_name).
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path


def driver_version() -> str | None:
    """The NVIDIA driver's version from nvidia-smi (torch does not report it); None without one."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def cpu_model() -> str | None:
    try:
        return next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or None


def faiss_info() -> dict:
    """Whether faiss is installed and whether it is a GPU build: semantic-ID tokenizers (OPQ, k-means) fit on its CPU index otherwise."""
    try:
        import faiss
    except ImportError:
        return {"installed": False}
    return {"installed": True, "version": getattr(faiss, "__version__", None), "gpus": faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0}


def environment() -> dict:
    import torch

    from recbench.train import bf16_cpu

    cuda = torch.cuda.is_available()
    gpus = []
    for i in range(torch.cuda.device_count() if cuda else 0):
        props = torch.cuda.get_device_properties(i)
        gpus.append({"index": i, "name": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
                     "capability": f"{props.major}.{props.minor}", "multiprocessors": props.multi_processor_count,
                     # TF32 tensor cores from Ampere (8.0) on; bf16 likewise
                     "tf32": props.major >= 8, "bf16": props.major >= 8})
    bf16, why = bf16_cpu()
    return {
        "cuda_available": cuda, "gpus": gpus, "gpu_count": len(gpus), "driver": driver_version() if cuda else None,
        "torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if cuda else None,
        "nccl": ".".join(map(str, torch.cuda.nccl.version())) if cuda and hasattr(torch.cuda, "nccl") else None,
        "bf16_supported": torch.cuda.is_bf16_supported() if cuda else bf16,
        "tf32_matmul_allowed": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn_allowed": torch.backends.cudnn.allow_tf32,
        "cpu": cpu_model(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "cpu_bf16": bf16, "cpu_bf16_why": why,
        "python": platform.python_version(), "platform": platform.platform(), "faiss": faiss_info(),
    }
