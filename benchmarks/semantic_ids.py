"""Semantic-ID pipeline speed on one dataset, and what each collision strategy would cost.

    RECBENCH_DATA_MIRROR=../shared/data python benchmarks/semantic_ids.py [--dataset beauty]
        [--tokenizers pq opq rq] [--data DIR] [--threads N] [--set key=value ...]

Times, with the machine named: embedding every item's text with the configured sentence model
(target on a 2-core CPU with the offline all-MiniLM-L6-v2: <= 3 minutes for Beauty's 12,101 items),
PCA, each tokenizer's fit (target <= 30 s), encode and collision resolution, and the reload of
cached IDs (target <= 1 s). Wall time and this process's CPU time are both shown. On a CPU shared
with other jobs, torch's busy-waiting threads can cost more than they bring: `--threads 1` runs the
embedding on one torch thread (as OMP_NUM_THREADS=1 would for `recbench tokenize`). Without --data,
a fresh temporary RECBENCH_DATA is used so that the embedding is timed from scratch; pass a folder
to reuse its cached embeddings.

Then, per tokenizer, the two ways to make colliding IDs unique, measured on the same codes:
TIGER's extra digit (a digit that numbers the items sharing all codes) and recbench's re-assignment
of the last digit to the nearest free code (recbench.semantic_ids.make_unique).
"""

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    load = ", load average %.1f" % os.getloadavg()[0] if hasattr(os, "getloadavg") else ""
    return f"{cpu}, {os.cpu_count()} cores, torch threads: {torch.get_num_threads()}, {gpu}{load}"


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def strategies(x, mask, entry, config) -> dict:
    """The cost of TIGER's extra digit and of last-digit re-assignment on one tokenizer's codes."""
    import numpy as np

    from recbench import semantic_ids

    quantizer = semantic_ids.tokenize(x, mask, entry.obj, config).quantizer
    raw = quantizer.encode(x)
    _, counts = np.unique(raw, axis=0, return_counts=True)
    _, prefix_counts = np.unique(raw[:, :-1], axis=0, return_counts=True)
    codes, increase = semantic_ids.make_unique(x, raw, quantizer)
    own = ((x - quantizer.decode(raw)) ** 2).sum(1)
    moved = (codes != raw).any(1)
    errors = quantizer.last_digit_errors(x[moved], raw[moved])
    rank = (errors < errors[np.arange(moved.sum()), codes[moved, -1]][:, None]).sum(1)  # 0: nearest, 1: next-best
    return {
        "collisions before": semantic_ids.collision_rate(raw),
        "items changed (both)": float(moved.mean()),
        "extra digit: ID length": raw.shape[1] + 1,
        "extra digit: its values (largest group)": int(counts.max()),
        "re-assign: mean error +": float(increase.mean() / own.mean()),
        "re-assign: moved items' error +": float((increase[moved] / np.maximum(own[moved], 1e-12)).mean()),
        "re-assign: new code's rank, median/max": f"{np.median(rank):.0f} / {rank.max()}",
        f"re-assign: largest prefix group (limit {config.codebook_size})": int(prefix_counts.max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--tokenizers", nargs="*", default=["pq", "opq", "rq"])
    parser.add_argument("--data", help="RECBENCH_DATA to use (default: a fresh temporary folder)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--set", nargs="*", default=[], help="embedding/tokenizer config overrides key=value")
    args = parser.parse_args()
    os.environ["RECBENCH_DATA"] = args.data or tempfile.mkdtemp(prefix="recbench-sid-bench-")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    from recbench import embeddings, semantic_ids
    from recbench import registry as plugin_registry
    from recbench.data import Split, prepare

    registry = plugin_registry.registry()
    entries = [registry.entry("tokenizer", name) for name in args.tokenizers]
    embedding, configs = semantic_ids.tokenizer_configs(entries, dict(kv.split("=", 1) for kv in args.set))
    ds = registry.get("dataset", args.dataset)
    print(f"machine: {machine()}")
    print(f"RECBENCH_DATA={os.environ['RECBENCH_DATA']}")
    data, wall, _ = timed(lambda: prepare(ds, ds.Config()))
    mask = semantic_ids.train_mask(Split(data, 1), data.n_items)
    print(f"{data.name}: {data.n_items:,} items, {int(mask.sum()):,} in the training split (prepared in {wall:.1f} s)")

    emb, wall, cpu = timed(lambda: embeddings.embed(data, embedding, log=print))
    state = "cached" if emb.seconds is None else f"{wall:.1f} s wall, {cpu:.1f} s CPU, {data.n_items / wall:.0f} items/s"
    print(f"embed ({emb.model}): {state}  [target <= 180 s for 12,101 items on 2 cores]")

    rows = []
    for entry in entries:
        config = configs[entry.name]
        ids, _, cpu = timed(lambda e=entry, c=config: semantic_ids.build(data, mask, e, c, embedding, rebuild=True))  # even over a cache
        again, reload_wall, _ = timed(lambda e=entry, c=config: semantic_ids.build(data, mask, e, c, embedding))
        fit = ids.timings["fit"]
        print(f"{entry.name}: pca {ids.timings['pca']:.2f} s, fit {fit:.1f} s [target <= 30 s], encode "
              f"{ids.timings['encode']:.2f} s, resolve {ids.timings['resolve']:.2f} s ({cpu:.1f} s CPU in all); "
              f"cached reload {reload_wall:.3f} s [target <= 1 s]; {ids.unique_ids:,} unique IDs of {ids.items:,}")
        assert again.load_seconds is not None and (again.codes == ids.codes).all()
        x = embeddings.reduce(emb.vectors, mask, embedding)[1:]
        rows.append((entry.name, strategies(x, mask[1:], entry, config)))

    keys = list(rows[0][1])
    print("\ncollision strategies on the same codes: TIGER's extra digit vs last-digit re-assignment (recbench's)")
    print("| tokenizer | " + " | ".join(keys) + " |")
    print("|" + " --- |" * (len(keys) + 1))
    for name, row in rows:
        cells = [f"{v:.2%}" if isinstance(v, float) else str(v) for v in row.values()]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
