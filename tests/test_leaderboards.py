"""Leaderboards: the committed markdown matches its records (and the check catches drift), the
statistics agree with scipy, every format parses, published rows stay out of the ranking, the
picture renders, `compare` and `reproduce` work end to end."""

import csv
import dataclasses
import io
import json
import math
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from recbench import registry as plugin_registry
from recbench.cli.compare import find_record
from recbench.errors import UsageError
from recbench.metrics import summarize
from recbench.results import formats, records, references, significance
from recbench.results import leaderboard as lb
from recbench.runner import spec_from_record

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "leaderboards"
RECORDS = COMMITTED / "records"
REGENERATE = "recbench leaderboard --results leaderboards/records --write-markdown leaderboards/"
ML100K_POP = sorted((RECORDS / "ml-100k").glob("ml-100k__pop__*.json"))[0]


def regenerate(cli, records_dir: Path, tmp: Path) -> Path:
    """Copy `records_dir` to TMP/leaderboards/records and write the markdown beside it, as committed."""
    out = tmp / "leaderboards"
    shutil.copytree(records_dir, out / "records")
    cli("leaderboard", "--results", str(out / "records"), "--write-markdown", str(out))
    return out


def drift(out: Path) -> list[str]:
    """The markdown files that differ between `out` and the committed leaderboards/."""
    names = sorted({p.name for p in COMMITTED.glob("*.md")} | {p.name for p in out.glob("*.md")})
    return [n for n in names if not (COMMITTED / n).is_file() or not (out / n).is_file()
            or (COMMITTED / n).read_text(encoding="utf-8") != (out / n).read_text(encoding="utf-8")]


def test_committed_leaderboards_match_their_records(cli, tmp_path):
    out = regenerate(cli, RECORDS, tmp_path)
    changed = drift(out)
    assert not changed, (
        f"leaderboards/{', leaderboards/'.join(changed)} differ from what the committed records in leaderboards/records "
        f"render to. Regenerate from the repository root with `{REGENERATE}` and commit the result."
    )


def test_drift_check_catches_a_hand_edited_record(cli, tmp_path):
    edited = tmp_path / "records"
    shutil.copytree(RECORDS, edited)
    path = edited / "ml-100k" / ML100K_POP.name
    record = json.loads(path.read_text())
    record["command"] = "recbench run --plugin pop --dataset ml-100k --edited-by-hand"
    path.write_text(json.dumps(record))
    out = regenerate(cli, edited, tmp_path / "regenerated")
    assert "ml-100k.md" in drift(out)
    assert "--edited-by-hand" in (out / "ml-100k.md").read_text()


# ---- statistics against scipy ------------------------------------------------------------------


def test_paired_statistics_match_scipy_and_hand_computed_effect_size():
    b = np.array([0.0, 0.25, 0.1, 0.6, 0.3])
    a = b + np.array([0.1, 0.2, 0.3, 0.4, 0.5])  # differences: mean 0.3, variance (ddof 1) 0.025
    result = significance.paired(a, b)
    assert result.p_ttest == stats.ttest_rel(a, b).pvalue
    assert result.p_wilcoxon == stats.wilcoxon(a, b).pvalue
    assert result.diff == pytest.approx(0.3)
    assert result.std_diff == pytest.approx(math.sqrt(0.025))
    assert result.cohens_d == pytest.approx(0.3 / math.sqrt(0.025))
    assert (result.mean_a, result.mean_b) == (pytest.approx(a.mean()), pytest.approx(b.mean()))


def test_identical_results_have_no_difference():
    a = np.array([0.0, 1.0, 0.5, 0.0])
    result = significance.paired(a, a.copy())
    assert (result.diff, result.cohens_d, result.p_ttest, result.p_wilcoxon) == (0.0, 0.0, 1.0, 1.0)


def test_holm_correction_on_hand_made_p_values():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> raised to 0.06 (monotone)
    assert significance.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert significance.holm([0.5, 0.6]) == [1.0, 1.0]
    assert significance.holm([]) == []


# ---- records made for these tests --------------------------------------------------------------


def variant(source: Path, folder: Path, generator: str, seed: int, ranks: np.ndarray, users_per_s: float = 1000.0,
            data_fingerprint: str | None = None) -> Path:
    """A copy of the record at `source` with other per-user ranks (and the metrics they give)."""
    record = records.load(source)
    record.generator.name, record.seed = generator, seed
    record.config_fingerprint = f"{generator:0<12}"[:12]
    record.run_id = f"{record.dataset.name}__{generator}__s{seed}__20260101T000000000"
    record.per_user.test_rank = records.encode_ints(ranks)
    record.metrics.test = summarize(ranks)
    record.eval.test_users_per_s = users_per_s
    record.dataset.fingerprint = data_fingerprint or record.dataset.fingerprint
    return records.write(record, folder)


@pytest.fixture
def board_records(tmp_path):
    """The committed records, with ml-100k reduced to the pop record plus a better model (3 seeds), one
    indistinguishable from it and one on other prepared data."""
    folder = tmp_path / "records"
    shutil.copytree(RECORDS, folder)
    for path in (folder / "ml-100k").glob("*.json"):
        if path.name != ML100K_POP.name:
            path.unlink()
    pop = records.load(ML100K_POP).test_ranks()
    rng = np.random.default_rng(0)
    better = [(pop * 0.3 + rng.integers(0, 3, len(pop))).astype(int) for _ in range(3)]
    for seed, ranks in enumerate(better):
        variant(ML100K_POP, folder, "better", seed, ranks, 5000)
    variant(ML100K_POP, folder, "alike", 0, rng.permutation(better[1]), 200)  # same mean as one seed of "better"
    variant(ML100K_POP, folder, "elsewhere", 0, pop + 5, 20, data_fingerprint="0" * 16)
    return folder


@pytest.mark.parametrize("device, generator_config, expected", [
    ({"type": "cpu", "name": "AMD EPYC (1 thread)"}, {"cpu_amp": True, "amp": True}, "AMD EPYC (1 thread, bf16)"),
    ({"type": "cpu", "name": "AMD EPYC (1 thread)"}, {"cpu_amp": False, "amp": True}, "AMD EPYC (1 thread, fp32)"),
    ({"type": "cuda", "name": "NVIDIA H200"}, {"cpu_amp": True, "amp": False}, "NVIDIA H200 (fp32)"),
    ({"type": "cuda", "name": "NVIDIA H200"}, {"cpu_amp": False, "amp": True}, "NVIDIA H200 (bf16)"),
    ({"type": "cpu", "name": "AMD EPYC (2 threads)"}, {}, "AMD EPYC (2 threads)"),  # pop trains nothing
])
def test_the_device_column_names_the_arithmetic(device, generator_config, expected):
    record = records.load(ML100K_POP)
    record.device = records.Device(**device)
    record.config = {**record.config, "generator": generator_config}
    assert lb.device_label(record) == expected


def test_a_record_from_before_cpu_amp_reads_as_the_fp32_it_trained_in():
    path = sorted((RECORDS / "beauty").glob("beauty__tiger__*.json"))[0]
    data = json.loads(path.read_text())
    assert data["schema_version"] == records.SCHEMA_VERSION
    generator = {k: v for k, v in data["config"]["generator"].items() if k != "cpu_amp"}
    data = {**data, "config": {**data["config"], "generator": generator}, "device": {"type": "cpu", "name": "AMD EPYC (2 threads)"}}
    record = records.Record.from_dict(data)
    assert record.config["generator"]["cpu_amp"] is False and lb.device_label(record) == "AMD EPYC (2 threads, fp32)"


def test_the_committed_records_make_the_rows_they_made():
    """Every committed record lands in the row it landed in, with the same neighbours, setting label
    and metrics, as in tests/data/rows_before.json (made before fingerprints hashed the whole config
    and records.upgrade took over the compatibility rules): no row splits or merges. The fingerprints
    themselves may differ. Records committed since then are left out of the comparison (they may
    join a row or make new ones)."""
    expected = json.loads((Path(__file__).parent / "data" / "rows_before.json").read_text())
    known = {name for row in expected for name in row["records"]}
    rows = [{"dataset": dataset, "generator": r.generator, "tokenizer": r.tokenizer, "setting": r.setting(),
             "records": sorted(rec.path.name for rec in r.runs + r.repeats if rec.path.name in known),
             "metrics": {rec.path.name: rec.metrics.test for rec in r.runs + r.repeats if rec.path.name in known}}
            for dataset, ds_rows in lb.collect([RECORDS]).items() for r in ds_rows]
    rows = [row for row in rows if row["records"]]
    order = lambda row: (row["dataset"], row["generator"], row["records"])  # noqa: E731
    assert sorted(rows, key=order) == sorted(expected, key=order)


def test_rows_are_tested_against_the_best(board_records):
    [board] = lb.boards(lb.collect([board_records], "ml-100k"))
    status = {row.generator: v.status for row, v in zip(board.rows, board.verdicts)}
    assert board.rows[0].generator == "better" and board.rows[0].seeds == 3
    assert status == {"better": "best", "alike": "tied", "elsewhere": "n/a", "pop": "worse"}
    verdicts = {row.generator: v for row, v in zip(board.rows, board.verdicts)}
    assert "prepared data" in verdicts["elsewhere"].reason
    raw = [verdicts[g].test.p_ttest for g in ("alike", "pop")]
    assert [verdicts[g].p for g in ("alike", "pop")] == pytest.approx(significance.holm(raw))


def test_compare_prints_p_values_and_effect_size(cli, board_records):
    a = board_records / "ml-100k" / "ml-100k__better__s0__20260101T000000000.json"
    out = cli("compare", str(a), ML100K_POP.stem, "--results", str(board_records)).stdout
    assert "paired t-test" in out and "Wilcoxon signed-rank" in out and "p = " in out
    assert "Cohen's d" in out and "difference A − B: +" in out
    data = cli.json("compare", str(a), str(ML100K_POP), "--json", "--metric", "mrr")
    assert data["metric"] == "mrr" and data["users"] == 943 and 0 <= data["ttest"]["p"] < 0.05
    assert data["difference"] > 0 and data["cohens_d"] > 0 and 0 <= data["wilcoxon"]["p"] <= 1


def test_compare_averages_the_seeds_of_a_side_per_user(cli):
    tiger = sorted((RECORDS / "ml-100k").glob("ml-100k__tiger__*.json"))
    fingerprints = {path: records.load(path).config_fingerprint for path in tiger}
    seeds = [p for p in tiger if fingerprints[p] == fingerprints[tiger[0]]]  # one config's seeds
    assert len(seeds) == 2
    data = cli.json("compare", ",".join(str(p) for p in seeds), str(ML100K_POP), "--json")
    assert data["a"]["seeds"] == [0, 1] and data["b"]["seeds"] == [0] and data["users"] == 943
    runs = [records.load(p) for p in seeds]
    per_user = (significance.user_metric(runs[0], "ndcg@10")[1] + significance.user_metric(runs[1], "ndcg@10")[1]) / 2
    assert data["a"]["mean"] == pytest.approx(per_user.mean())
    assert data["ttest"]["p"] == pytest.approx(stats.ttest_rel(per_user, significance.seed_average([records.load(ML100K_POP)], "ndcg@10")).pvalue)
    assert "mean of seeds 0, 1" in cli("compare", ",".join(str(p) for p in seeds), str(ML100K_POP)).stdout
    other = next(p for p in tiger if fingerprints[p] != fingerprints[tiger[0]])
    proc = cli("compare", f"{seeds[0]},{other}", str(ML100K_POP), check=2)
    assert "is not a seed of the same result" in proc.stderr and fingerprints[other] in proc.stderr
    assert "names seed 0 twice" in cli("compare", f"{seeds[0]},{seeds[0]}", str(ML100K_POP), check=2).stderr


def test_compare_refuses_other_data_and_names_why(cli, board_records):
    elsewhere = board_records / "ml-100k" / "ml-100k__elsewhere__s0__20260101T000000000.json"
    proc = cli("compare", str(elsewhere), str(ML100K_POP), check=2)
    assert "No paired test" in proc.stderr and "prepared data" in proc.stderr
    beauty = records.load(next((RECORDS / "beauty").glob("*.json")))
    with pytest.raises(significance.NotComparable, match="on dataset beauty"):
        significance.compare([beauty], [records.load(ML100K_POP)])
    with pytest.raises(UsageError, match="Valid metrics: recall@5"):
        significance.compare([beauty], [beauty], "hr@10")
    with pytest.raises(UsageError, match="No result record with run id 'nope'"):
        find_record("nope", [board_records])


# ---- formats, published rows, picture ----------------------------------------------------------


class Tables(HTMLParser):
    """Collects the cells (text, class) of every table of an html page."""

    def __init__(self):
        super().__init__()
        self.tables, self.cell = [], None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append({"class": dict(attrs).get("class", ""), "rows": []})
        elif tag == "tr":
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th"):
            self.cell = ["", dict(attrs).get("class") or ""]

    def handle_data(self, data):
        if self.cell is not None:
            self.cell[0] += data

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1]["rows"][-1].append(tuple(self.cell))
            self.cell = None


def test_html_csv_and_json_parse(board_records):
    boards = lb.boards(lb.collect([board_records]))
    page = formats.to_html(boards)
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page and "<script" not in page
    parser = Tables()
    parser.feed(page)
    measured = [t for t in parser.tables if t["class"] != "published"]
    published = [t for t in parser.tables if t["class"] == "published"]
    assert len(measured) == 3 and len(published) == 2  # beauty, ml-100k, sports; references for beauty and sports
    ml = measured[1]["rows"]
    assert [row[0][0] for row in ml[1:]] == ["better", "alike", "pop", "elsewhere"]
    assert all("best" not in cls for table in published for row in table["rows"] for _, cls in row)

    rows = list(csv.DictReader(io.StringIO(formats.to_csv(boards))))
    assert {r["kind"] for r in rows} == {"measured", "published"}
    assert [r["generator"] for r in rows if r["dataset"] == "ml-100k"] == ["better", "alike", "pop", "elsewhere"]
    assert [r["vs_best"] for r in rows if r["dataset"] == "ml-100k"] == ["best", "tied", "worse", "n/a"]

    data = json.loads(formats.to_json(boards))
    assert data["ml-100k"]["rows"][0]["runs"] == [f"ml-100k__better__s{s}__20260101T000000000" for s in range(3)]
    assert data["ml-100k"]["rows"][1]["vs_best"]["status"] == "tied" and data["ml-100k"]["references"] == []
    papers = {r["model"] for r in data["beauty"]["references"] if r["source"] != references.GENREC}
    genrec = {r["model"] for r in data["beauty"]["references"] if r["source"] == references.GENREC}
    assert papers == {"SASRec", "TIGER", "RPG", "DiffGRM"}
    assert genrec == {"SASRec (CE)", "SASRec (BCE)", "HSTU (CE)", "HSTU (sampled softmax)", "TIGER", "RPG (sentence-t5-xl)"}


def test_published_rows_are_shown_apart_and_never_ranked(cli):
    by_dataset = lb.collect([RECORDS])
    text = lb.markdown(lb.boards(by_dataset))
    beauty = text.split("### beauty\n")[1].split("### ml-100k\n")[0]
    measured, published = beauty.split("published (not measured here)")
    measured, levels = measured.split("item level against ID level")
    assert "| DiffGRM (published) | - | DiffGRM paper (arXiv 2510.21805) | - | - | 0.0502 |" in levels
    best = max(row.mean("ndcg@10") for row in by_dataset["beauty"])
    assert "| pop |" in measured and "TIGER" not in measured and f"**{best:.4f}**" in measured
    assert "| TIGER * | 0.0454 |" in published and "**" not in published
    assert "TIGER paper (NeurIPS 2023)" in published and "all-MiniLM-L6-v2" in published
    assert "| DiffGRM * | - | - | - | 0.0502 | semantic IDs, collisions kept |" in published
    assert "| TIGER * | 0.0454 | 0.0648 | 0.0321 | 0.0384 | items |" in published
    hidden = cli("leaderboard", "--results", str(RECORDS), "--format", "markdown", "--no-references").stdout
    assert "published" not in hidden and "TIGER" not in hidden and "| pop |" in hidden


def test_every_reference_row_carries_the_protocol_of_its_evaluator():
    """TIGER's (unique IDs) and RPG's (item ids) evaluators score items, DiffGRM's scores semantic IDs with
    collisions kept; item-ID models have only items."""
    for ref in references.REFERENCES:
        expected = "id" if ref.model.startswith("DiffGRM") else "item"
        assert ref.protocol == expected, ref
    with pytest.raises(ValueError, match="protocol must be one of"):
        references.Reference("beauty", "X", {}, "nowhere", True, "ids")


def test_published_numbers_sit_in_the_column_of_their_protocol_on_every_page():
    """In the item-against-ID table of each committed page, TIGER's and RPG's published NDCG@10 are in
    the item column and DiffGRM's in the ID column."""
    pages = {ds: (ROOT / "leaderboards" / f"{ds}.md").read_text() for ds in ("beauty",)}
    for ds, page in pages.items():
        table = page.split("item level against ID level")[1].split("\n\n")[1]
        cells = {(line.split(" | ")[0].lstrip("| "), line.split(" | ")[2]): line.split(" | ") for line in table.splitlines()[2:]}
        for ref in references.for_dataset(ds):
            if not ref.semantic_ids:
                continue
            row = cells[(f"{ref.model} (published)", ref.source)]
            item, ident = row[4], row[5]  # N@10 item, N@10 ID
            value = f"{ref.metrics['ndcg@10']:.4f}"
            assert (item, ident) == ((value, "-") if ref.protocol == "item" else ("-", value)), (ds, ref.model)


def test_reference_datasets_are_recbench_dataset_names():
    names = set(plugin_registry.registry().entries["dataset"])
    assert {r.dataset for r in references.REFERENCES} == {"beauty", "sports", "toys", "cds", "ml-1m"} <= names
    assert all(set(r.metrics) <= {"recall@5", "ndcg@5", "recall@10", "ndcg@10", "recall@50", "ndcg@50"} for r in references.REFERENCES)


def test_plot_writes_a_png(cli, board_records, tmp_path):
    png = tmp_path / "board.png"
    out = cli("leaderboard", "--results", str(board_records), "--plot", str(png)).stdout
    assert f"Wrote {png}" in out.replace("\n", "")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_leaderboard_option_errors_exit_2(cli, tmp_path):
    assert "drop --dataset" in cli("leaderboard", "--results", str(RECORDS), "-d", "ml-100k", "--write-markdown", str(tmp_path), check=2).stderr
    assert ".png" in cli("leaderboard", "--results", str(RECORDS), "--plot", str(tmp_path / "x.gif"), check=2).stderr


# ---- reproduce ---------------------------------------------------------------------------------


def test_spec_from_record_repeats_the_config():
    record = records.load(ML100K_POP)
    spec = spec_from_record(record)
    assert (spec.generator, spec.dataset, spec.tokenizer, spec.seed, spec.device) == ("pop", "ml-100k", None, 0, "cpu")
    assert spec.overrides == {**record.config["generator"], **record.config["dataset"]}


def test_reproduce_the_committed_pop_record_exactly(cli, mirror, tmp_path):
    out = cli("reproduce", str(ML100K_POP), "--results-dir", str(tmp_path / "again")).stdout
    assert "Reproduced exactly" in out and "recorded" in out and "ndcg@10" in out
    [again] = (tmp_path / "again" / "ml-100k").glob("*.json")
    assert records.load(again).metrics.test == records.load(ML100K_POP).metrics.test


def test_reproduce_a_missing_record_exits_2(cli, tmp_path):
    assert "does not exist" in cli("reproduce", str(tmp_path / "none.json"), check=2).stderr


def test_a_run_records_its_setting_label_however_it_was_typed():
    """DiffGM's flags (--model/--category/--train_batch_size) and recbench's options give one label,
    recorded at run time; the leaderboard reads the field (older records: their command)."""
    from recbench import config as cfg
    from recbench.cli.run import aliased_options, run_control
    from recbench.runner import RunSpec, setting_label

    def label(args, **options):
        overrides = cfg.parse_overrides(args)
        control = run_control(overrides)
        plugin, dataset, tokenizer = aliased_options(overrides, options.get("plugin"), options.get("dataset"), None)
        return setting_label(RunSpec(plugin, dataset, tokenizer, preset=options.get("preset"), overrides=overrides, **control))

    diffgm = label(["--model=DIFF_GRM", "--category=Beauty", "--train_batch_size=256", "--resume=true"], preset="cpu")
    assert diffgm == label(["--batch_size=256"], plugin="diff_grm", dataset="beauty", preset="cpu") == "preset cpu, batch_size=256"
    tuned = RunSpec("sasrec", "beauty", overrides={"lr": "0.01", "epochs": "12"}, tune={"params": {"lr": "0.01"}})
    assert setting_label(tuned) == "tuned, epochs=12" and setting_label(RunSpec("pop", "beauty")) == "defaults"
    run = dataclasses.replace(records.load(ML100K_POP), setting="preset cpu", command="recbench run --lr=1")
    assert lb.Row("beauty", "diff_grm", "opq", None, "f" * 12, runs=[run]).setting() == "preset cpu"
    before = {k: v for k, v in json.loads(ML100K_POP.read_text()).items() if k != "setting"}
    assert records.upgrade({**before, "schema_version": 2, "command": "recbench run --lr=1"})["setting"] == "lr=1"


@pytest.mark.parametrize("agree", [True, False])
def test_a_row_counts_seeds_not_records(tmp_path, agree):
    """Two records of one seed and config (a re-run, a reproduction) are one seed: the latest stands for
    it, the row says how many records stand behind it, and the paired test sees that seed once."""
    folder = tmp_path / "records"
    one, other = tmp_path / "one", tmp_path / "other"
    pop = records.load(ML100K_POP).test_ranks()
    rng = np.random.default_rng(1)
    first = (pop * 0.3 + rng.integers(0, 3, len(pop))).astype(int)
    rerun = first if agree else first + 1
    earlier = records.load(variant(ML100K_POP, one, "model", 0, first))
    earlier.created = "2026-01-01T00:00:00Z"
    records.write(earlier, one)
    shutil.copytree(one, folder)
    again = records.load(variant(ML100K_POP, other, "model", 0, rerun))
    again.run_id, again.created = again.run_id.replace("20260101", "20260102"), "2026-01-02T00:00:00Z"
    records.write(again, folder)
    shutil.copy(ML100K_POP, folder / "ml-100k")
    (row,) = [r for r in lb.collect([folder])["ml-100k"] if r.generator == "model"]
    assert row.seeds == 1 and row.records == 2 and row.runs[0].run_id == again.run_id
    assert row.mean("ndcg@10") == summarize(rerun)["ndcg@10"]
    assert row.seeds_label() == ("1 (2 records, agree)" if agree else "1 (2 records, differ: the latest counts)")
    (alone,) = [r for r in lb.collect([one])["ml-100k"]]
    if agree:
        assert row.mean("ndcg@10") == alone.mean("ndcg@10") and row.std("ndcg@10") == 0.0
    board = lb.boards(lb.collect([folder]), with_references=False)[0]
    pop_verdict = board.verdicts[[r.generator for r in board.rows].index("pop")]
    assert pop_verdict.test.n == len(pop)  # users once each: the seed's two records are not stacked
    text = lb.markdown([board])
    assert "1 (2 records" in text
