"""Training compute of recorded runs: FLOPs per training sample, and in all.

    RECBENCH_DATA_MIRROR=../shared/data python benchmarks/train_flops.py RECORD.json [RECORD.json ...]
        [--batches 16] [--jsonl FILE]
    python benchmarks/train_flops.py --config GENERATOR DATASET [--preset P] [--set key=value ...] [--epochs N]

Each RECORD is the result record of a `recbench run` of a gradient-trained generator. The model is
rebuilt from the record's config (no checkpoint needed: FLOPs do not depend on the weights) and
`--batches` batches spread evenly over the run's first epoch are drawn exactly as the trainer
draws them (the same samples, length buckets and trimming). The forward and backward pass of each
batch's loss is counted by torch.utils.flop_counter.FlopCounterMode (matrix products and
attention; elementwise work is not counted), giving FLOPs per training sample; times the samples
of an epoch and the epochs the run trained, the run's training FLOPs. Validation and test decoding
are not counted. With --jsonl one line per record is appended to FILE (the gaps page's scaling plot
reads leaderboards/records/benchmarks/train_flops.jsonl).

With --config, a setting that was never run here (a published size) is counted the same way from
its resolved config, times `--epochs` (default: the config's planned epochs): what training it
would cost, to place it on the same axis as the measured runs.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from recbench import pipeline
from recbench.data import buckets
from recbench.results import records
from recbench.runner import resolve, spec_from_record


def epoch_one_batches(split, config, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, list[np.ndarray]]:
    """(users, positions, predict, batches of sample indices) of the first epoch, as recbench.train draws them."""
    if getattr(config, "train_windows", False) and not config.train_sliding:
        users, positions, predict = split.window_positions()
    else:
        (users, positions), predict = split.train_positions(config.train_sliding, config.min_hist_len), None
    if config.bucket_pool:
        lengths = split.history_lengths(users, positions)
        batches = buckets.epoch_batches(lengths, config.batch_size, config.bucket_pool, seed, 1)
    else:
        g = torch.Generator().manual_seed(seed + 1)
        order = torch.randperm(len(users), generator=g).numpy()
        batches = [order[i: i + config.batch_size] for i in range(0, len(order), config.batch_size)]
    return users, positions, predict, batches


def flops_per_sample(resolved, seed: int, n_batches: int) -> tuple[float, int, int]:
    """(forward + backward FLOPs per training sample, samples per epoch, batches counted) of a resolved run."""
    pieces = pipeline.build(resolved, device=torch.device("cpu"), seed=seed, progress=False)
    model, split, config = pieces.model.train(), pieces.split, resolved.configs["generator"]
    users, positions, predict, batches = epoch_one_batches(split, config, seed)
    picked = [batches[i] for i in np.unique(np.linspace(0, len(batches) - 1, min(n_batches, len(batches))).round().astype(int))]
    flops = samples = 0
    for idx in picked:
        batch = split.gather(users[idx], positions[idx], trim=config.bucket_pool > 0, predict=None if predict is None else predict[idx])
        counter = FlopCounterMode(display=False)
        with counter:
            model(batch).backward()
        model.zero_grad(set_to_none=True)
        flops += counter.get_total_flops()
        samples += len(idx)
    return flops / samples, int(len(users)), len(picked)


def measure(record: records.Record, n_batches: int) -> dict:
    per_sample, n_samples, counted = flops_per_sample(resolve(spec_from_record(record)), record.seed, n_batches)
    epochs = record.train.epochs or 0
    return {"run_id": record.run_id, "generator": record.generator.name, "dataset": record.dataset.name,
            "flops_per_sample": round(per_sample), "samples_per_epoch": n_samples, "epochs": epochs,
            "train_flops": round(per_sample * n_samples * epochs), "batches_measured": counted, "torch": torch.__version__}


def measure_config(generator: str, dataset: str, preset: str | None, settings: list[str], epochs: int | None, n_batches: int) -> dict:
    from recbench.config import parse_overrides
    from recbench.runner import RunSpec

    spec = RunSpec(generator, dataset, preset=preset, overrides=parse_overrides([f"--{s}" for s in settings]))
    resolved = resolve(spec)
    per_sample, n_samples, counted = flops_per_sample(resolved, 0, n_batches)
    epochs = epochs or resolved.configs["generator"].epochs
    return {"run_id": None, "generator": generator, "dataset": dataset, "setting": " ".join([f"preset {preset}"] * bool(preset) + settings),
            "flops_per_sample": round(per_sample), "samples_per_epoch": n_samples, "epochs": epochs,
            "train_flops": round(per_sample * n_samples * epochs), "batches_measured": counted, "torch": torch.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records", nargs="*", type=Path)
    parser.add_argument("--config", nargs=2, metavar=("GENERATOR", "DATASET"), help="count a setting instead of records")
    parser.add_argument("--preset", help="with --config: a named preset")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="with --config: config values")
    parser.add_argument("--epochs", type=int, help="with --config: epochs to count (default: the config's)")
    parser.add_argument("--batches", type=int, default=16, help="batches of the first epoch to count (evenly spread)")
    parser.add_argument("--jsonl", type=Path, help="append one JSON line per record to this file")
    args = parser.parse_args()
    print("| run | generator | GFLOP / sample | samples / epoch | epochs | training TFLOP |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    if not args.records and not args.config:
        parser.error("give RECORD files or --config GENERATOR DATASET")
    found = [measure(records.load(path), args.batches) for path in args.records]
    if args.config:
        found.append(measure_config(*args.config, args.preset, args.set, args.epochs, args.batches))
    for r in found:
        print(f"| {r['run_id'] or r['setting']} | {r['generator']} | {r['flops_per_sample'] / 1e9:.3f} | {r['samples_per_epoch']:,} | {r['epochs']} | "
              f"{r['train_flops'] / 1e12:,.1f} |")
        if args.jsonl:
            args.jsonl.parent.mkdir(parents=True, exist_ok=True)
            with args.jsonl.open("a", encoding="utf-8") as f:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
