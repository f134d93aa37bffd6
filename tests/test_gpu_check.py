"""`python -m benchmarks.gpu` in its CPU mode and as a dry run, on data carried the way a GPU machine
gets it (`python -m benchmarks.gpu_prepare` into a folder, the check pointed at it): the summary a
later session reads has its keys, a speed row per generator and the skipped steps' reasons. The data
is the tests' synthetic dataset as ml-100k (RECBENCH_GPU_CHECK_DATASET), so this runs on any machine
in about two minutes; on Beauty the same code reads Beauty (docs/gpu.md). Slow: it trains six models."""

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT

from benchmarks import gpu_table
from benchmarks.gpu_plan import GENERATORS

pytestmark = pytest.mark.slow
SUMMARY_KEYS = {"schema", "mode", "dry_run", "started", "seconds", "budget_s", "env", "assumptions", "steps", "tests", "speed", "full_runs"}
SPEED_KEYS = {"generator", "dataset", "setting", "device", "samples_per_s", "peak_memory_mb", "flops_per_sample", "achieved_tflops", "mfu",
              "eval_users_per_s", "full_run_estimate_s"}


DATASET = {"RECBENCH_GPU_CHECK_DATASET": "ml-100k"}


@pytest.fixture(scope="module")
def carried(tmp_path_factory, synthetic_folder):
    """The folder gpu_prepare fills: the synthetic dataset prepared in a fresh RECBENCH_DATA, its IDs built there."""
    root = tmp_path_factory.mktemp("carried")
    folder = root / ".gpu-data"
    env = {**os.environ, **DATASET, "RECBENCH_DATA_MIRROR": str(synthetic_folder), "RECBENCH_DATA": str(root / "data"),
           "RECBENCH_HOME": str(root / "home"), "RECBENCH_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "benchmarks.gpu_prepare", str(folder), "--tiny"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "MiB (limit 64 MiB)" in out.stdout and (folder / "mirror" / "ml-100k" / "u.data").is_file()
    return folder


def check(args, carried, tmp_path, timeout):
    env = {k: v for k, v in os.environ.items() if k not in ("RECBENCH_DATA", "RECBENCH_DATA_MIRROR")}
    env.update(RECBENCH_HOME=str(tmp_path / "home"), RECBENCH_OFFLINE="1", CUDA_VISIBLE_DEVICES="", **DATASET)  # the CPU mode, whatever the machine
    out = subprocess.run([sys.executable, "-m", "benchmarks.gpu", str(tmp_path / "out"), "--data", str(carried), *args], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert set(summary) == SUMMARY_KEYS and summary["schema"] == 1
    return summary, out.stdout


def test_the_cpu_mode_runs_every_step_at_tiny_sizes_and_writes_the_summary(carried, tmp_path, capsys):
    summary, stdout = check(["--steps", "2"], carried, tmp_path, timeout=300)
    assert summary["mode"] == "cpu-tiny" and not summary["dry_run"] and summary["env"]["cuda_available"] is False
    assert [(s["name"], s["status"]) for s in summary["steps"]] == [("env", "ok"), ("tests", "skipped"), ("speed", "ok"), ("full_runs", "skipped")]
    assert summary["tests"]["passed"] == summary["tests"]["failed"] == 0 and summary["tests"]["skipped"] > 0
    assert any("no CUDA device" in reason for reason in summary["tests"]["skip_reasons"])
    assert [row["generator"] for row in summary["speed"]] == list(GENERATORS)
    for row in summary["speed"]:
        assert SPEED_KEYS <= set(row) and row["samples_per_s"] > 0 and row["flops_per_sample"] > 0 and row["mfu"] is None
        assert row["dataset"] == "ml-100k" and row["device_type"] == "cpu"
    assert all(r["status"] == "skipped" and "no CUDA device" in r["reason"] for r in summary["full_runs"])
    assert json.loads((tmp_path / "out" / "env.json").read_text()) == summary["env"]
    gpu_table.main([str(tmp_path / "out" / "summary.json")])  # the speed table and the full runs a later session reads
    table = capsys.readouterr().out
    assert all(f"| {name} | tiny (CPU mode)" in table for name in GENERATORS) and table.count("| skipped |") == 2


def test_the_dry_run_plans_the_published_sizes_with_estimates_and_runs_nothing(carried, tmp_path):
    summary, stdout = check(["--dry-run", "--full"], carried, tmp_path, timeout=300)
    assert summary["dry_run"] and all(s["status"] == "planned" and s["estimate_s"] > 0 for s in summary["steps"])
    assert "assume 100 TFLOP/s" in stdout and summary["assumptions"]["assumed_tflops"] == 100
    from recbench_plugins.diff_grm import DiffGRMConfig

    assert {r["generator"]: r["batch_size"] for r in summary["speed"]}["diff_grm"] == DiffGRMConfig().batch_size  # published size
    assert [r["generator"] for r in summary["full_runs"]] == ["diff_grm", "ar_grm"] and not (tmp_path / "out" / "records").exists()
