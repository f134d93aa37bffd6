"""The random states of one process (Python's, numpy's, torch's CPU and CUDA generators) as
tensors and plain numbers, so that a checkpoint holds them without pickled objects (see
recbench.checkpoints) and a resumed run draws exactly what an uninterrupted one would.

numpy's legacy global generator is an MT19937: its state is the name, 624 32-bit words, a
position, and a cached Gaussian; Python's is a version, 625 words and a cached Gaussian. Both are
kept as lists of ints, which restore them bit for bit.
"""

from __future__ import annotations

import random

import numpy as np
import torch


def state() -> dict:
    """Every random state of this process, as tensors and plain data."""
    version, words, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    out = {
        "python": {"version": version, "state": list(words), "gauss_next": gauss},
        "numpy": {"bit_generator": str(name), "key": [int(k) for k in keys], "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def restore(saved: dict) -> None:
    """Set every random state of this process to `saved` (what `state` returned)."""
    py, npy = saved["python"], saved["numpy"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss_next"]))
    np.random.set_state((npy["bit_generator"], np.asarray(npy["key"], dtype=np.uint32), npy["pos"], npy["has_gauss"],
                         npy["cached_gaussian"]))
    torch.set_rng_state(saved["torch"])
    if "cuda" in saved and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(saved["cuda"])


def from_legacy(old: dict) -> dict:
    """The random states of a checkpoint written before checkpoints held plain data only (Python's
    state as a tuple, numpy's as the tuple np.random.get_state returns, with an ndarray) in the form
    `state` returns."""
    version, words, gauss = old["python"]
    name, keys, pos, has_gauss, cached = old["numpy"]
    out = {
        "python": {"version": int(version), "state": [int(w) for w in words], "gauss_next": None if gauss is None else float(gauss)},
        "numpy": {"bit_generator": str(name), "key": [int(k) for k in np.asarray(keys)], "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": old["torch"],
    }
    if "cuda" in old:
        out["cuda"] = list(old["cuda"])
    return out
