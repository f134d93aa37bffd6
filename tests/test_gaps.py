"""The gaps page: each factor is a paired comparison of two committed rows (or of a row's item and ID
levels), the unexplained part is published − baseline − the measured steps, and a spec naming a
row that does not exist is an error naming the file."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from recbench import metrics
from recbench.errors import UsageError
from recbench.results import gaps, references, significance
from recbench.results import leaderboard as lb

RECORDS = Path(__file__).resolve().parents[1] / "leaderboards" / "records"

SPEC = """
about = "test"
[[chain]]
model = "TIGER"
dataset = "beauty"
published = "TIGER"
published_source = "TIGER paper (NeurIPS 2023), Table 1"
baseline = "tiger eeee092f"
about = "TIGER's chain"
unmeasured = ["the embedding model"]
[[chain.factor]]
name = "learning rate"
what = "0.005 -> 0.002, 4 epochs"
rows = ["tiger eeee092f", "tiger 77181abc"]
[[chain.factor]]
name = "protocol"
what = "item level -> ID level"
id_level = "tiger eeee092f"
[[chain]]
model = "DIFF_GRM"
dataset = "beauty"
published = "DiffGRM"
published_source = "DiffGRM paper (arXiv 2510.21805)"
baseline = "diff_grm 7fe37529"
[[chain.factor]]
name = "protocol"
what = "item level -> ID level"
id_level = "diff_grm 7fe37529"
"""


@pytest.fixture
def folder(tmp_path):
    out = tmp_path / "records"
    shutil.copytree(RECORDS / "beauty", out / "beauty")
    (out / "gaps.toml").write_text(SPEC)
    return out


def rows(folder):
    return lb.collect([folder])["beauty"]


def test_a_factor_is_the_paired_comparison_of_its_two_rows(folder):
    spec, rs = gaps.load_spec(folder), rows(folder)
    baseline, (step, _) = gaps.measure(spec["chain"][0], {"beauty": rs}, "here")
    a, b = (gaps.find_row(n, rs, "here") for n in ("tiger eeee092f", "tiger 77181abc"))
    test = significance.compare(b.runs, a.runs)
    assert baseline is a and step.a is a and step.b is b
    assert (step.mean_a, step.mean_b, step.p) == (test.mean_b, test.mean_a, test.p_ttest)
    assert step.mean_b - step.mean_a == pytest.approx(b.mean("ndcg@10") - a.mean("ndcg@10"))


def test_the_protocol_factor_compares_a_rows_id_level_with_its_item_level(folder):
    spec = gaps.load_spec(folder)
    _, (step,) = gaps.measure(spec["chain"][1], {"beauty": rows(folder)}, "here")
    row = step.a
    assert step.b is None
    assert step.mean_a == pytest.approx(row.mean("ndcg@10"))
    assert step.mean_b == pytest.approx(np.mean([r.id_level.metrics.test["ndcg@10"] for r in row.runs]))
    ident = np.mean([metrics.per_user(gaps.decode_ints(r.id_level.test_rank))["ndcg@10"] for r in row.runs], axis=0)
    assert step.p == significance.paired(ident[np.argsort(row.runs[0].users())], significance.seed_average(row.runs, "ndcg@10")).p_ttest


def test_the_page_says_what_is_left_unexplained(folder):
    text, points = gaps.page(folder, lb.collect([folder]), "REGENERATE")
    assert points == [] and "REGENERATE" in text
    tiger = text.split("### TIGER on beauty")[1].split("###")[0]
    published = next(r for r in references.for_dataset("beauty") if r.model == "TIGER" and r.source.startswith("TIGER paper"))
    a, b = (gaps.find_row(n, rows(folder), "here") for n in ("tiger eeee092f", "tiger 77181abc"))
    gap, step = published.metrics["ndcg@10"] - a.mean("ndcg@10"), b.mean("ndcg@10") - a.mean("ndcg@10")
    # TIGER's published number is item level: its protocol step is shown but not summed; DiffGRM's is ID level
    assert f"Published − baseline: {gap:+.4f}" in tiger and f"Unexplained: {gap - step:+.4f}" in tiger
    assert "| protocol |" in tiger and "The protocol step is not in the sum" in tiger
    assert "The protocol step is not in the sum" not in text.split("### DIFF_GRM on beauty")[1].split("###")[0]
    assert "| learning rate |" in tiger and "Not measured here: the embedding model" in tiger
    assert "published 0.0502 (semantic IDs, collisions kept; DiffGRM paper (arXiv 2510.21805))" in text


def test_a_one_seed_step_within_two_standard_errors_is_marked_not_settled(folder):
    """The embeddings step of AR_GRM (p about 0.1, the all-mpnet-base-v2 row one seed) is marked; TIGER's learning rate
    (p far below 0.05) and a step with two seeds on both sides (p above 0.05) are not."""
    (folder / "gaps.toml").write_text(SPEC + """
[[chain]]
model = "AR_GRM"
dataset = "beauty"
baseline = "ar_grm 1015e421"
[[chain.factor]]
name = "text embeddings"
rows = ["ar_grm 1015e421", "ar_grm 23ccdc75"]
""")
    spec, rs = gaps.load_spec(folder), rows(folder)
    _, steps = gaps.measure(spec["chain"][2], {"beauty": rs}, "here")
    assert steps[0].p > gaps.TWO_SE_P and [s.factor for s in gaps.unsettled(steps)] == ["text embeddings"]
    two = gaps.find_row("diff_grm 7fe37529", rs, "here")
    assert two.seeds == 2 and gaps.unsettled([gaps.Step("two seeds each", "", two, two, 0.02, 0.021, 0.5)]) == []
    _, tiger = gaps.measure(spec["chain"][0], {"beauty": rs}, "here")
    assert gaps.unsettled(tiger) == []
    text, _ = gaps.page(folder, lb.collect([folder]), "REGENERATE")
    ar = text.split("### AR_GRM on beauty")[1]
    single = " and ".join(f"ar_grm [{r.config_fingerprint[:8]}]" for r in (steps[0].a, steps[0].b) if r.seeds == 1)
    assert f"Not settled: text embeddings is within two standard errors (p = {gaps.fmt_p(steps[0].p)}) with one seed of {single};" in ar
    assert "Not settled" not in text.split("### AR_GRM on beauty")[0]


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.replace("tiger 77181abc", "tiger ffffffff"), "row 'tiger ffffffff' matches 0 rows"),
    (lambda s: s.replace('published = "DiffGRM"', 'published = "DiffGRM-X"'), "no published row 'DiffGRM-X'"),
    (lambda s: s.replace('baseline = "tiger eeee092f"\n', ""), r"chain 1 \(TIGER\) lacks baseline"),
    (lambda s: s + "\n[[[", "is not valid TOML"),
])
def test_a_bad_spec_is_an_error_that_names_the_file(folder, edit, message):
    (folder / "gaps.toml").write_text(edit(SPEC))
    with pytest.raises(UsageError, match=message) as info:
        gaps.page(folder, lb.collect([folder]), "REGENERATE")
    assert "gaps.toml" in str(info.value)


def test_the_scaling_section_places_each_row_at_its_training_flops_and_plots_it(folder, tmp_path):
    """A [[scaling]] group: one point per row at its runs' mean training FLOPs (benchmarks/train_flops.jsonl),
    the row's mean test NDCG@10 ± std over seeds, its label, the group's reading once, and the plot."""
    import json

    a, b = (gaps.find_row(n, rows(folder), "here") for n in ("tiger eeee092f", "tiger 77181abc"))
    flops = {r.run_id: 1e12 * (1 + i) for i, r in enumerate(a.runs + b.runs)}
    (folder / "benchmarks").mkdir()
    (folder / "benchmarks" / "train_flops.jsonl").write_text("".join(json.dumps({"run_id": k, "train_flops": v}) + "\n"
                                                                       for k, v in flops.items()))
    (folder / "gaps.toml").write_text(SPEC + """
[[scaling]]
dataset = "beauty"
rows = ["tiger eeee092f", "tiger 77181abc"]
labels = {"tiger 77181abc" = "lr 0.002"}
about = "The reading of these points."
""")
    text, points = gaps.page(folder, lb.collect([folder]), "REGENERATE")
    assert [p["row"] for p in points] == [a, b]
    assert points[1]["tflops"] == pytest.approx(np.mean([flops[r.run_id] for r in b.runs]) / 1e12)
    assert f"| beauty | tiger | lr 0.002 [77181abc] | 2 | {points[1]['tflops']:,.1f} | {b.mean('ndcg@10'):.4f} ± {b.std('ndcg@10'):.4f} |" in text
    assert text.count("The reading of these points.") == 1 and "![test NDCG@10 against training compute](gaps.png)" in text
    assert gaps.plot_scaling(points, tmp_path / "gaps.png").stat().st_size > 10_000

    (folder / "benchmarks" / "train_flops.jsonl").write_text("")
    with pytest.raises(UsageError, match=f"no training FLOPs for {a.runs[0].run_id}"):
        gaps.page(folder, lb.collect([folder]), "REGENERATE")


def test_the_fitted_trend_is_a_line_in_log_compute_and_says_where_two_models_would_meet():
    """Each model's points get the least-squares line NDCG@10 = a + b·log2(TFLOP); two models' lines on a
    dataset either meet at more compute (stated as an extrapolation, with how far past the largest run)
    or do not (the leader's line is the steeper one)."""
    def points(model, a, b, tflops):
        return [{"dataset": "d", "model": model, "tflops": t, "mean": a + b * np.log2(t)} for t in tflops]

    slow = points("slow", 0.01, 0.004, [10, 20, 40])  # leads, flatter
    fast = points("fast", -0.01, 0.008, [10, 20, 40])  # trails, steeper: the lines meet at log2(x) = 5, 32 TFLOP...
    fitted = gaps.trends(slow + fast)
    assert fitted[("d", "slow")] == pytest.approx((0.01, 0.004)) and fitted[("d", "fast")] == pytest.approx((-0.01, 0.008))
    assert "the lines meet" not in "\n".join(gaps.trend_lines(slow + fast))  # ... which is behind the largest run (40)
    ahead = points("fast", -0.03, 0.008, [10, 20, 40])  # now they meet at log2(x) = 10: 1,024 TFLOP, 26x the largest run
    text = "\n".join(gaps.trend_lines(slow + ahead))
    assert "d, fast: NDCG@10 ≈ -0.0300 +0.0080 × log2(TFLOP), +0.0080 per doubling (fitted on 3 points, 10.0–40.0 TFLOP)" in text
    assert "d: the lines meet at about 1,024 TFLOP, 26x the largest run measured (extrapolated)" in text
    apart = points("fast", -0.01, 0.002, [10, 20, 40])
    assert "slow leads at the largest run and its line is the steeper one, so the fitted gap grows by 0.0020 per doubling" in \
        "\n".join(gaps.trend_lines(slow + apart))
    assert gaps.trends(slow[:2]) == {} and gaps.trend_lines(slow[:2]) == []  # two points: no line is fitted
