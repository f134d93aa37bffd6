"""`recbench compare A B`: a paired significance test of two results on per-user test metrics.

Each side is one run, or several seeds of one config given as `RUN1,RUN2,...`: their per-user
metric is averaged over the seeds first, as the leaderboard does for a row with several seeds."""

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from .. import paths
from ..errors import UsageError, did_you_mean
from ..results import records, significance


def find_record(name: str, folders: list[Path]) -> records.Record:
    """The record at path `name`, or the one whose run id is `name` under `folders`."""
    if Path(name).is_file():
        return records.load(name)
    if name.endswith(".json"):
        raise UsageError(f"Result record '{name}' does not exist.")
    found = {p.stem: p for p in records.find(folders)}
    if name not in found:
        where = ", ".join(str(f) for f in folders)
        raise UsageError(
            f"No result record with run id '{name}' in {where} (give a record path, or a run id with --results DIR)."
            + did_you_mean(name, found)
        )
    return records.load(found[name])


def find_result(names: str, folders: list[Path]) -> list[records.Record]:
    """The records of one side: `RUN` or `RUN1,RUN2,...`, the seeds of one generator and config."""
    runs = [find_record(name.strip(), folders) for name in names.split(",") if name.strip()]
    if not runs:
        raise UsageError(f"No run named in '{names}' (give a record path or run id, or several seeds as RUN1,RUN2).")
    first = runs[0]
    for other in runs[1:]:
        if (other.generator.name, other.config_fingerprint) != (first.generator.name, first.config_fingerprint):
            raise UsageError(
                f"'{other.run_id}' ({other.generator.name}, config {other.config_fingerprint}) is not a seed of the same "
                f"result as '{first.run_id}' ({first.generator.name}, config {first.config_fingerprint}): the runs of "
                "one side must share generator and config.")
    seeds = [r.seed for r in runs]
    if len(set(seeds)) < len(seeds):
        raise UsageError(f"'{names}' names seed {max(seeds, key=seeds.count)} twice: one side averages distinct seeds.")
    return runs


def side(runs: list[records.Record], mean: float) -> dict:
    return {"run_ids": [r.run_id for r in runs], "generator": runs[0].generator.name, "seeds": [r.seed for r in runs],
            "mean": mean}


def report(a: list[records.Record], b: list[records.Record], metric: str, test: significance.Paired) -> dict:
    return {
        "metric": metric,
        "dataset": a[0].dataset.name,
        "data_fingerprint": a[0].dataset.fingerprint,
        "users": test.n,
        "a": side(a, test.mean_a),
        "b": side(b, test.mean_b),
        "difference": test.diff,
        "std_difference": test.std_diff,
        "cohens_d": test.cohens_d,
        "ttest": {"statistic": test.t, "p": test.p_ttest},
        "wilcoxon": {"statistic": test.w, "p": test.p_wilcoxon},
    }


def text(r: dict) -> str:
    names = {key: ", ".join(r[key]["run_ids"]) for key in ("a", "b")}
    width = max(len(name) for name in names.values())
    lines = [f"{r['metric']} on the test split of {r['dataset']} (prepared data {r['data_fingerprint'][:8]}), "
             f"{r['users']:,} users, paired per user"]
    for key in ("a", "b"):
        run, seeds = r[key], r[key]["seeds"]
        which = f"seed {seeds[0]}" if len(seeds) == 1 else f"mean of seeds {', '.join(map(str, seeds))}"
        lines.append(f"  {key.upper()}  {names[key]:<{width}}  {run['generator']} ({which})  mean {run['mean']:.4f}")
    lines += [
        f"  difference A − B: {r['difference']:+.4f} (std over users {r['std_difference']:.4f})",
        f"  effect size: Cohen's d (paired) = {r['cohens_d']:+.3f}",
        f"  paired t-test:         t = {r['ttest']['statistic']:+.3f}, p = {r['ttest']['p']:.3g}",
        f"  Wilcoxon signed-rank:  W = {r['wilcoxon']['statistic']:.1f}, p = {r['wilcoxon']['p']:.3g}",
        f"  (two-sided; p < {significance.ALPHA} means the difference is unlikely to be chance for a single comparison)",
    ]
    return "\n".join(lines)


def command(
    run_a: str = typer.Argument(..., help="A record path or a run id found under the results folders; several seeds as RUN1,RUN2."),
    run_b: str = typer.Argument(..., help="A record path or a run id found under the results folders; several seeds as RUN1,RUN2."),
    metric: str = typer.Option("ndcg@10", "--metric", "-m", help="Per-user test metric to compare."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
    results: Optional[List[Path]] = typer.Option(None, "--results", help="More folders of records to find run ids in."),
) -> None:
    """Compare two results on the same data: both means, the difference, Cohen's d, paired t-test and Wilcoxon p-values.
    A result is one run, or several seeds (RUN1,RUN2) averaged per user."""
    significance.check_metric(metric)
    folders = [paths.results_dir(), *(results or [])]
    a, b = find_result(run_a, folders), find_result(run_b, folders)
    r = report(a, b, metric, significance.compare(a, b, metric))
    if as_json:
        print(json.dumps(r, indent=2))
    else:
        Console(highlight=False).print(text(r), markup=False, soft_wrap=True)
