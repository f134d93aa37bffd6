"""Decoding speed against quality of trained semantic-ID models (DIFF_GRM, AR_GRM, TIGER, RPG).

    RECBENCH_DATA_MIRROR=../shared/data python benchmarks/decoding.py RECORD.json [RECORD.json ...]
        [--users 1000] [--beams 10 32 256] [--steps 1 2 3 4] [--graph-beams 10 50 200] [--device cpu] [--batch-size 256]
        [--jsonl FILE]

Each RECORD is the result record of a `recbench run` of diff_grm, ar_grm, tiger or rpg; the model is
rebuilt from the record's config and loaded from its best checkpoint. `--users` test users sampled
uniformly (the same users for every setting, `--seed`) are decoded at every beam size and, for
DIFF_GRM, every number of denoising steps (decoder passes; 4 = one digit per pass); AR_GRM and TIGER
decode digit by digit (steps = digits). RPG decodes through its item graph: `--graph-beams` are its
beam sizes (items kept per propagation step, with the record's steps and edges), and one more row
ranks every item by the same score ("all"), the exhaustive search the graph stands in for. Printed
per setting: users/s, mean latency of one batch of `--batch-size` users, NDCG@10 and Recall@10 of
the decoding recbench evaluates (constrained to items), and the invalid-ID rate: the share of the
top-10 IDs that are no item when the same beam search runs without the item-table constraint (as
DiffGM decodes; RPG only ever proposes items). Training samples/s of the run (from its log) is
printed with each model. Ends with a markdown table for the docs (docs/diff-grm-ar-grm-cpu.md). With --jsonl each setting is
appended to FILE as one JSON line (run id, machine, users and the figures): the gaps page shows the
beam sweeps of leaderboards/records/benchmarks/decoding.jsonl.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from recbench import checkpoints, metrics, pipeline
from recbench.data import Split
from recbench.results import records
from recbench.runner import device_name, resolve, spec_from_record
from recbench_plugins.models.sid_parts import pad_ranking


def load(record: dict, device: torch.device):
    """(model, split) of a recorded run, with its best checkpoint loaded."""
    pieces = pipeline.build(resolve(spec_from_record(record)), device=device)
    checkpoint = checkpoints.load(Path(record.checkpoints.best), device, ("model",), "Pass the record of a run whose best.pt is here")
    pieces.model.load_state_dict(checkpoint["model"])
    return pieces.model.eval(), pieces.split


def train_speed(record: dict) -> float:
    """Mean training samples/s over the run's epochs (its log.jsonl)."""
    lines = [json.loads(x) for x in Path(record.checkpoints.log).read_text().splitlines() if x.strip()]
    speeds = [x["samples_per_s"] for x in lines if "samples_per_s" in x]
    return float(np.mean(speeds)) if speeds else float("nan")


@torch.no_grad()
def measure(model, batches, beam: int, device: torch.device) -> dict:
    ranks, invalid, seconds = [], [], 0.0
    for batch in batches:
        batch = batch.to(device)
        start = time.perf_counter()
        memory = model.encode(batch.history) if hasattr(model, "denoise_steps") else model.encode(batch.history, batch.users)
        items, _ = model.search(*memory, beam)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds += time.perf_counter() - start
        ranks.append(metrics.list_ranks(pad_ranking(items, 20, model.n_items), batch.target).cpu())
        free, score = model.search(*memory, beam, constrained=False)
        top = free[:, :10]
        invalid.append(((top == 0) & torch.isfinite(score[:, :10])).float().mean().item())
    return summary(batches, ranks, seconds, float(np.mean(invalid)))


@torch.no_grad()
def measure_graph(model, batches, beam: int | None, device: torch.device) -> dict:
    """RPG: the test users ranked through the item graph keeping `beam` items a step, or (None) by scoring every item."""
    model.graph()  # built once from the trained code table, before the clock starts
    if beam is not None:
        model.num_beams = beam
    ranks, seconds = [], 0.0
    for batch in batches:
        batch = batch.to(device)
        start = time.perf_counter()
        logprobs = model.digit_logprobs(batch)
        if beam is None:
            items = model.item_scores(logprobs).topk(20, dim=1).indices + 1
        else:
            items = model.graph_decode(logprobs, batch.users, 20)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds += time.perf_counter() - start
        ranks.append(metrics.list_ranks(pad_ranking(items, 20, model.n_items), batch.target).cpu())
    return summary(batches, ranks, seconds, 0.0)


def summary(batches, ranks, seconds: float, invalid: float) -> dict:
    users = sum(len(b.users) for b in batches)
    found = metrics.summarize(torch.cat(ranks).numpy())
    return {"users_per_s": users / seconds, "batch_ms": 1000 * seconds / len(batches), "ndcg@10": found["ndcg@10"],
            "recall@10": found["recall@10"], "invalid@10": invalid}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records", nargs="+", type=Path)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample of test users")
    parser.add_argument("--beams", type=int, nargs="+", default=[10, 32, 256])
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--graph-beams", type=int, nargs="+", default=[10, 50, 200], help="RPG's beam sizes")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--jsonl", type=Path, help="append one JSON line per setting to this file")
    args = parser.parse_args()
    device = torch.device(args.device)
    machine = device_name(device)
    print(f"machine: {machine}; torch {torch.__version__}; {args.users} test users sampled with seed {args.seed}")
    rows = []
    for path in args.records:
        record = records.load(path)
        name = record.generator.name
        model, split = load(record, device)
        small = Split(split.data, split.max_seq_len)
        rng = np.random.default_rng(args.seed)  # a uniform sample: user order is not random (early users are harder)
        small.eval_users = np.sort(rng.choice(split.eval_users, min(args.users, len(split.eval_users)), replace=False))
        batches = list(small.eval_batches("test", args.batch_size))
        about = {"run_id": record.run_id, "dataset": record.dataset.name, "users": len(small.eval_users), "sample_seed": args.seed,
                 "machine": machine, "torch": torch.__version__}
        first = len(rows)
        print(f"{name} ({record.run_id}): {sum(p.numel() for p in model.parameters()):,} parameters, "
              f"training {train_speed(record):,.0f} samples/s")
        if hasattr(model, "graph_decode"):  # RPG
            for beam in [*args.graph_beams, None]:
                r = measure_graph(model, batches, beam, device)
                rows.append({"generator": name, "beam": beam or "all", "steps": f"graph, {model.propagation_steps}" if beam else "–", **r})
                report(rows[-1])
        else:
            for steps in args.steps if hasattr(model, "denoise_steps") else [model.n_digit]:
                if hasattr(model, "denoise_steps"):
                    model.denoise_steps = steps
                for beam in args.beams:
                    r = measure(model, batches, beam, device)
                    rows.append({"generator": name, "beam": beam, "steps": steps, **r})
                    report(rows[-1])
        if args.jsonl:
            with args.jsonl.open("a", encoding="utf-8") as f:
                f.writelines(json.dumps({**about, **row}) + "\n" for row in rows[first:])
    print()
    print("| generator | beam | steps (denoising / digits / graph) | users/s | ms / batch of %d | NDCG@10 | Recall@10 | invalid IDs in top 10 (unconstrained) |"
          % args.batch_size)
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['generator']} | {r['beam']} | {r['steps']} | {r['users_per_s']:,.1f} | {r['batch_ms']:,.0f} | "
              f"{r['ndcg@10']:.4f} | {r['recall@10']:.4f} | {r['invalid@10']:.1%} |")


def report(r: dict) -> None:
    print(f"  beam {r['beam']:>4} steps {r['steps']}: {r['users_per_s']:8.1f} users/s {r['batch_ms']:9.1f} ms/batch  "
          f"NDCG@10 {r['ndcg@10']:.4f}  Recall@10 {r['recall@10']:.4f}  invalid@10 {r['invalid@10']:.1%}")


if __name__ == "__main__":
    main()
