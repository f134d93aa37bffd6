"""The pieces of a run, built one way for every caller: prepare -> split -> semantic IDs -> model.

`runner.run` trains and evaluates what `build` returns; the benchmarks build their models with the
same function, so a benchmark measures exactly the model a run would train.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from . import distributed as dist
from . import memory
from .api import Recommender
from .data import Prepared, Split, prepare


@dataclass
class Pieces:
    data: Prepared
    split: Split
    semantic_ids: object | None  # recbench.semantic_ids.SemanticIDs for semantic-ID generators, else None
    model: Recommender


def data_of(resolved, *, log: Callable[[str], None] = lambda s: None) -> tuple[Prepared, Split]:
    """The prepared dataset (cached) and its leave-one-out split, histories cut to the generator's
    max_seq_len (0: the dataset's default). Under torchrun rank 0 prepares first."""
    start = time.perf_counter()
    if not dist.is_main():
        dist.barrier()
    data = prepare(resolved.dataset.obj, resolved.configs["dataset"], log=log)
    if dist.is_main():
        dist.barrier()
    max_seq_len = getattr(resolved.configs["generator"], "max_seq_len", 0) or resolved.dataset.obj.max_seq_len
    log(f"{data.name}: {data.n_users:,} users, {data.n_items:,} items, {data.n_interactions:,} interactions "
        f"({time.perf_counter() - start:.1f} s to load)")
    return data, Split(data, max_seq_len)


def semantic_ids_of(resolved, data: Prepared, split: Split, *, device: torch.device | str | None = None, rebuild: bool = False,
                    log: Callable[[str], None] = lambda s: None, progress: bool = True):
    """The run's semantic IDs (built once, then cached), or None for an item-ID generator. Under
    torchrun rank 0 builds them first."""
    if resolved.tokenizer is None:
        return None
    from . import semantic_ids

    if not dist.is_main():
        dist.barrier()
    sids = semantic_ids.build(data, split, resolved.tokenizer, resolved.configs["tokenizer"], resolved.configs["embedding"],
                              log=log, progress=progress and dist.is_main(), rebuild=rebuild,
                              device=None if device is None else str(device), imported=resolved.configs.get("imports"))
    if dist.is_main():
        dist.barrier()
    log(f"{resolved.tokenizer.name} semantic IDs: {sids.n_digit} digits x {sids.codebook_size} codes "
        f"({sids.embedding_model}), {sids.collision_rate:.1%} of items collided before resolution")
    return sids


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build(resolved, *, device: torch.device | str = "cpu", seed: int = 0, rebuild_ids: bool = False,
          log: Callable[[str], None] = lambda s: None, progress: bool = True, memory_check: bool = False) -> Pieces:
    """Data, split, semantic IDs and the untrained model (seeded by `seed`, on `device`) of a
    resolved run (runner.resolve). With `memory_check`, a model that cannot fit the device is
    refused before it is built (recbench.memory)."""
    data, split = data_of(resolved, log=log)
    resolved.configs["generator"].check_catalogue(data.n_items, data.name)
    sids = semantic_ids_of(resolved, data, split, device=device, rebuild=rebuild_ids, log=log, progress=progress)
    gen, config = resolved.generator.obj, resolved.configs["generator"]

    def make(config):
        return gen.build(config, split, semantic_ids=sids) if sids is not None else gen.build(config, split)

    if memory_check:
        try:
            found = memory.estimate(make, config, split.max_seq_len, data.n_items)
        except Exception:  # noqa: BLE001 - a model that computes from real values while it is built: no estimate
            found = None
        if found is not None:
            memory.check(found, torch.device(device), f"{resolved.generator.name} with this config", config, split.max_seq_len)
    seed_everything(seed)
    return Pieces(data, split, sids, make(config).to(device))
