"""The speed table and the full runs of a GPU check, as Markdown, from its summary.json.

    python -m benchmarks.gpu_table OUT_DIR/summary.json

The speed table has one row per generator (the summary's `speed`); the full runs list each planned
run with its status and test NDCG@10, and the record to add to a leaderboard
(`recbench leaderboard --results-dir OUT_DIR/records`, or copied under leaderboards/records/).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def speed_table(summary: dict) -> list[str]:
    env = summary.get("env") or {}
    machine = ", ".join(g["name"] for g in env.get("gpus", [])) or f"{env.get('cpu')} (torch threads: {env.get('torch_threads')})"
    lines = [f"Machine: {machine}; torch {env.get('torch')}, CUDA {env.get('cuda')}, driver {env.get('driver')}; mode {summary['mode']}.", "",
             "| generator | setting | params | batch | samples/s | epoch | peak MB | GFLOP/sample | TFLOP/s | MFU |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in summary["speed"]:
        if "error" in r:
            lines.append(f"| {r['generator']} | failed: {r['error'][:80]} | | | | | | | | |")
        elif "samples_per_s" in r:
            mfu = f"{r['mfu']:.1%}" if r.get("mfu") is not None else "-"
            lines.append(f"| {r['generator']} | {r['setting']} | {r['params']:,} | {r['batch_size']} | {r['samples_per_s']:,.0f} | "
                         f"{r['epoch_s']:,.1f} s | {r['peak_memory_mb']:,.0f} | {r['flops_per_sample'] / 1e9:.3f} | {r['achieved_tflops']:.3g} | {mfu} |")
    return lines


def full_runs(summary: dict) -> list[str]:
    lines = ["| generator | status | test NDCG@10 | minutes | record or reason |", "| --- | --- | ---: | ---: | --- |"]
    for r in summary["full_runs"]:
        ndcg = (r.get("test") or {}).get("ndcg@10")
        minutes = f"{r['seconds'] / 60:.1f}" if r.get("seconds") else "-"
        lines.append(f"| {r['generator']} | {r['status']} | {'-' if ndcg is None else f'{ndcg:.4f}'} | {minutes} | "
                     f"{r.get('record') or r.get('reason') or '-'} |")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("summary", type=Path)
    summary = json.loads(parser.parse_args(argv).summary.read_text(encoding="utf-8"))
    print("\n".join(speed_table(summary) + [""] + full_runs(summary)))


if __name__ == "__main__":
    main()
