"""A GPU check in one command: the machine, the GPU tests, training speed and, where they fit, the
published-size runs, all written under OUT_DIR.

    python -m benchmarks.gpu OUT_DIR [--dry-run] [--tiny | --full] [--budget-s 540] [--steps 30] [--data .gpu-data]
    benchmarks/gpu.sh OUT_DIR ...        (the same)

A session with a lent GPU runs this first, in one call. The steps, in order:

1. env: the machine (benchmarks.gpu_env) -> OUT_DIR/env.json
2. tests: `pytest -m gpu tests/test_gpu.py` (every trained generator's training step and decoding on
   CUDA in bf16 autocast against its CPU fp32 result; DDP over NCCL with two GPUs) -> OUT_DIR/gpu-tests.xml
3. speed: training throughput of DIFF_GRM, AR_GRM, TIGER, RPG, SASRec and HSTU at their published
   sizes on Beauty, `--steps` optimizer steps each (benchmarks.gpu_speed)
4. full_runs: a complete published-size `recbench run` of DIFF_GRM, then AR_GRM, on Beauty, each
   only if its estimate from the measured speed fits the time left of `--budget-s`; their records
   (device named, as every record) -> OUT_DIR/records/beauty/*.json, logs -> OUT_DIR/full_runs/

Without CUDA (or with --tiny) the same steps run on the CPU at tiny sizes (benchmarks.gpu_plan.TINY,
3 steps each), in about a minute: the tests skip with their reason and the full runs are skipped
with theirs. `--dry-run` runs nothing: it prints the plan with each step's estimated minutes, from
FLOPs per sample counted on the CPU and an assumed GPU throughput (gpu_plan.ASSUMED_TFLOPS), and
writes the plan as summary.json.

The data: a lent machine starts bare and offline, so `python -m benchmarks.gpu_prepare` first copies
the prepared Beauty data and its semantic IDs into .gpu-data/ (git-ignored), which travels with the
working tree; where `--data` (default .gpu-data) exists, RECBENCH_DATA points at it.

OUT_DIR/summary.json (schema 1), what a later session turns into leaderboard rows and a speed table:

    schema        1
    mode          "gpu" | "cpu-tiny"
    dry_run       true: `steps` hold estimates only
    started, seconds, budget_s
    env           the machine (env.json)
    assumptions   {"assumed_tflops", "embedding": the sent_emb_model of the semantic-ID runs, "dataset"}
    steps         [{"name": "env"|"tests"|"speed"|"full_runs", "status": "ok"|"failed"|"skipped"|"planned",
                    "seconds", "estimate_s", "reason"}]
    tests         {"passed", "failed", "errors", "skipped", "skip_reasons": [...], "junit": "gpu-tests.xml"}
    speed         one row per generator: generator, dataset, setting, device, device_type, params, batch_size,
                  steps, autocast_bf16, samples_per_s, samples_per_epoch, epoch_s, peak_memory_mb,
                  peak_memory_kind, flops_per_sample, achieved_tflops, peak_tflops, mfu, eval_users_per_s,
                  epochs, validations, full_run_estimate_s; or {generator, error}
    full_runs     one row per planned run: generator, status, estimate_s, seconds, reason, record (a path
                  under OUT_DIR: a normal result record, `recbench leaderboard --results-dir OUT_DIR/records`
                  lists it), test (its test metrics), device

The exit status is 1 when a step failed (a test, a generator's measurement, a full run), else 0.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.gpu_plan import ASSUMED_TFLOPS, DATASET, FULL_RUNS, GENERATORS, OFFLINE_EMBEDDING, run_spec

ROOT = Path(__file__).resolve().parent.parent
TESTS_ALLOWANCE_S = 150  # the GPU tests' time limit (and their estimate)
BUILD_ALLOWANCE_S = 10  # building a model and its data, per generator, in the estimates
MARGIN_S = 20  # kept free at the end of the budget


class Check:
    """The steps' results, the budget's clock, and summary.json written after every step (a check
    killed half-way leaves what it had)."""

    def __init__(self, out: Path, budget_s: float, mode: str, dry_run: bool):
        self.out, self.budget_s, self.t0 = out, budget_s, time.monotonic()
        self.summary = {"schema": 1, "mode": mode, "dry_run": dry_run, "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        "seconds": 0.0, "budget_s": budget_s, "env": None,
                        "assumptions": {"assumed_tflops": ASSUMED_TFLOPS, "embedding": OFFLINE_EMBEDDING, "dataset": DATASET},
                        "steps": [], "tests": None, "speed": [], "full_runs": []}

    def left(self) -> float:
        return self.budget_s - (time.monotonic() - self.t0)

    def step(self, name: str, status: str, seconds: float | None = None, estimate_s: float | None = None, reason: str | None = None) -> None:
        self.summary["steps"].append({"name": name, "status": status, "seconds": None if seconds is None else round(seconds, 1),
                                      "estimate_s": None if estimate_s is None else round(estimate_s, 1), "reason": reason})
        shown = f"{seconds:.0f} s" if seconds is not None else f"estimated {estimate_s / 60:.1f} min" if estimate_s is not None else ""
        print(f"[{name}] {status} {shown}{': ' + reason if reason else ''}", flush=True)
        self.write()

    def write(self) -> None:
        self.summary["seconds"] = round(time.monotonic() - self.t0, 1)
        (self.out / "summary.json").write_text(json.dumps(self.summary, indent=2) + "\n", encoding="utf-8")

    def failed(self) -> bool:
        return any(s["status"] == "failed" for s in self.summary["steps"])


def run_env(check: Check) -> None:
    from benchmarks.gpu_env import environment

    start = time.monotonic()
    env = environment()
    (check.out / "env.json").write_text(json.dumps(env, indent=2) + "\n", encoding="utf-8")
    check.summary["env"] = env
    check.step("env", "ok", time.monotonic() - start)


def junit_counts(path: Path) -> dict:
    """passed/failed/errors/skipped and the skip reasons of a pytest JUnit XML file."""
    suite = ET.parse(path).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    total, failed, errors, skipped = (int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
    reasons = sorted({s.get("message", "") for s in suite.iter("skipped")})
    return {"passed": total - failed - errors - skipped, "failed": failed, "errors": errors, "skipped": skipped,
            "skip_reasons": reasons, "junit": path.name}


def run_tests(check: Check) -> None:
    start = time.monotonic()
    xml = check.out / "gpu-tests.xml"
    limit = max(30.0, min(TESTS_ALLOWANCE_S, check.left() - MARGIN_S))
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}", str(ROOT / "tests" / "test_gpu.py")]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired as exc:
        (check.out / "gpu-tests.log").write_text((exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or "")
        check.step("tests", "failed", time.monotonic() - start, reason=f"the GPU tests ran past {limit:.0f} s")
        return
    (check.out / "gpu-tests.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")
    if not xml.is_file():
        check.step("tests", "failed", time.monotonic() - start, reason=f"pytest exited {proc.returncode} without a report (gpu-tests.log)")
        return
    counts = junit_counts(xml)
    check.summary["tests"] = counts
    bad = counts["failed"] + counts["errors"]
    status = "failed" if bad else "ok" if counts["passed"] else "skipped"
    reason = f"{counts['passed']} passed, {bad} failed, {counts['skipped']} skipped" + (
        f" ({'; '.join(counts['skip_reasons'])})" if status == "skipped" else "")
    check.step("tests", status, time.monotonic() - start, reason=reason)


def run_speed(check: Check, device: str, steps: int, tiny: bool) -> None:
    import torch

    from benchmarks.gpu_speed import measure

    start = time.monotonic()
    for name in GENERATORS:
        try:
            row = measure(name, device, steps, tiny)
        except Exception as exc:  # noqa: BLE001 - one generator's failure (out of memory, ...) is its row, the others still run
            row = {"generator": name, "error": f"{type(exc).__name__}: {str(exc).strip()[:500]}"}
        finally:
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
        check.summary["speed"].append(row)
        shown = row.get("error") or (f"{row['samples_per_s']:,.0f} samples/s, {row['peak_memory_mb']:,.0f} MB, "
                                     f"{row['flops_per_sample'] / 1e6:,.1f} MFLOP/sample" + (f", MFU {row['mfu']:.1%}" if row["mfu"] else ""))
        print(f"  {name}: {shown}", flush=True)
        check.write()
    failed = [r["generator"] for r in check.summary["speed"] if "error" in r]
    check.step("speed", "failed" if failed else "ok", time.monotonic() - start, reason=f"failed: {', '.join(failed)}" if failed else None)


def full_run_command(name: str, out: Path) -> list[str]:
    settings = [f"--{k}={v}" for k, v in run_spec(name, "cuda").overrides.items()]
    return [sys.executable, "-m", "recbench", "run", "-p", name, "-d", DATASET, "--device", "cuda", "--results-dir", str(out / "records"), *settings]


def run_full(check: Check, device: str) -> None:
    start = time.monotonic()
    if device != "cuda":
        why = "no CUDA device: the published-size runs need a GPU"
        for name in FULL_RUNS:
            check.summary["full_runs"].append({"generator": name, "status": "skipped", "reason": why,
                                               "command": " ".join(full_run_command(name, check.out)[1:])})
        check.step("full_runs", "skipped", time.monotonic() - start, reason=f"{why} (planned: python -m recbench run -p "
                   f"{'|'.join(FULL_RUNS)} -d {DATASET} --device cuda --sent_emb_model={OFFLINE_EMBEDDING})")
        return
    speeds = {r["generator"]: r for r in check.summary["speed"] if "error" not in r}
    logs = check.out / "full_runs"
    logs.mkdir(exist_ok=True)
    for name in FULL_RUNS:
        row = {"generator": name, "status": "skipped", "estimate_s": None, "seconds": None, "reason": None, "record": None}
        check.summary["full_runs"].append(row)
        if name not in speeds:
            row["reason"] = "no speed measured (see speed)"
            continue
        estimate = speeds[name]["full_run_estimate_s"] * 1.2 + 30  # startup, checkpoints and the test's larger beam
        row["estimate_s"] = round(estimate, 1)
        left = check.left() - MARGIN_S
        if estimate > left:
            row["reason"] = f"estimated {estimate / 60:.1f} min, {max(left, 0) / 60:.1f} min left"
            continue
        t = time.monotonic()
        before = set((check.out / "records").rglob("*.json"))
        with (logs / f"{name}.log").open("w", encoding="utf-8") as log:
            try:
                proc = subprocess.run(full_run_command(name, check.out), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, timeout=left)
                row["status"] = "ok" if proc.returncode == 0 else "failed"
                row["reason"] = None if proc.returncode == 0 else f"exit {proc.returncode} (full_runs/{name}.log)"
            except subprocess.TimeoutExpired:
                row.update(status="failed", reason=f"ran past the {left / 60:.1f} min left")
        row["seconds"] = round(time.monotonic() - t, 1)
        new = sorted(set((check.out / "records").rglob("*.json")) - before)
        if new:
            from recbench.results import records

            record = records.load(new[-1])
            row.update(record=str(new[-1].relative_to(check.out)), test=record.metrics.test, device=record.device.name)
        check.write()
    statuses = {r["status"] for r in check.summary["full_runs"]}
    status = "failed" if "failed" in statuses else "ok" if "ok" in statuses else "skipped"
    reasons = "; ".join(f"{r['generator']}: {r['reason']}" for r in check.summary["full_runs"] if r["reason"])
    check.step("full_runs", status, time.monotonic() - start, reason=reasons or None)


def decode_flops_per_user(resolved, users: int = 32) -> tuple[float, int]:
    """FLOPs of ranking one validation user as evaluation does (recommend, top max(KS)), counted on
    the CPU, and the number of validation users."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from recbench import metrics, pipeline

    pieces = pipeline.build(resolved, device="cpu", seed=0, progress=False)
    batch = next(pieces.split.eval_batches("valid", users))
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        pieces.model.eval().recommend(batch, max(metrics.KS), part="valid")
    return counter.get_total_flops() / len(batch), len(pieces.split.eval_users)


def dry_run(check: Check, steps: int, tiny: bool) -> None:
    """The plan with estimates: FLOPs per sample counted on the CPU (one batch of 64), over the assumed throughput."""
    from benchmarks.gpu_plan import validations
    from benchmarks.train_flops import flops_per_sample
    from recbench.runner import resolve

    rate = ASSUMED_TFLOPS * 1e12
    print(f"plan for {'cpu (CPU mode, tiny sizes)' if tiny else 'cuda (published sizes)'}; estimates assume {ASSUMED_TFLOPS:.0f} TFLOP/s "
          "sustained (training FLOPs counted on this CPU; elementwise work and data loading not counted)", flush=True)
    check.step("env", "planned", estimate_s=5)
    check.step("tests", "planned", estimate_s=TESTS_ALLOWANCE_S, reason="pytest -m gpu tests/test_gpu.py (a fixed allowance)")
    total, full = 0.0, []
    for name in GENERATORS:
        resolved = resolve(run_spec(name, "cpu", tiny, batch_size=64))
        per_sample, samples, _ = flops_per_sample(resolved, 0, 1)
        config = resolve(run_spec(name, "cpu", tiny)).configs["generator"]  # the published sizes do not depend on the device
        seconds = BUILD_ALLOWANCE_S + (steps + 2) * config.batch_size * per_sample / rate
        total += seconds
        row = {"generator": name, "flops_per_sample": round(per_sample), "batch_size": config.batch_size, "samples_per_epoch": samples,
               "epochs": config.epochs, "estimate_s": round(seconds, 1)}
        check.summary["speed"].append(row)
        print(f"  {name}: {per_sample / 1e6:,.1f} MFLOP/sample, batch {config.batch_size}, {steps} steps: {seconds:.0f} s", flush=True)
        if name in FULL_RUNS:
            train_s = samples * config.epochs * per_sample / rate
            per_user, users = decode_flops_per_user(resolve(run_spec(name, "cpu", tiny)))
            decode_s = users * (validations(config) + 1) * per_user / rate
            full.append({"generator": name, "status": "planned", "estimate_s": round(train_s + decode_s, 1),
                         "reason": f"{config.epochs} epochs x {samples:,} samples ({train_s / 60:.1f} min) and at most "
                                   f"{validations(config)} validations and the test of {users:,} users ({decode_s / 60:.1f} min), "
                                   "the test at the validation's beam"})
            print(f"  full run of {name}: {full[-1]['reason']}", flush=True)
    check.step("speed", "planned", estimate_s=total)
    check.summary["full_runs"] = full
    check.step("full_runs", "planned", estimate_s=sum(r["estimate_s"] for r in full),
               reason="each only if its estimate from the measured speed fits the time left" if not tiny else "skipped in CPU mode")


def use_data(folder: Path) -> None:
    """Point recbench at the carried caches and raw files (benchmarks.gpu_prepare) where they exist; run folders go to a
    temporary RECBENCH_HOME unless one is set; no model hub is asked (the machine is offline)."""
    if folder.is_dir():
        os.environ["RECBENCH_DATA"] = str(folder.resolve())
        if (folder / "mirror").is_dir():
            os.environ["RECBENCH_DATA_MIRROR"] = str((folder / "mirror").resolve())
    os.environ.setdefault("RECBENCH_HOME", tempfile.mkdtemp(prefix="recbench-gpu-home-"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="where env.json, gpu-tests.xml, summary.json, records/ and logs go")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and its estimates; run nothing")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--tiny", action="store_true", help="CPU mode: tiny sizes (the default without CUDA)")
    size.add_argument("--full", action="store_true", help="published sizes (the default with CUDA)")
    parser.add_argument("--budget-s", type=float, default=540, help="seconds for the whole check (default 540: one 9-minute call)")
    parser.add_argument("--steps", type=int, help="timed optimizer steps per generator (default 30; 3 in CPU mode)")
    parser.add_argument("--data", type=Path, default=ROOT / ".gpu-data", help="the carried caches (default .gpu-data)")
    args = parser.parse_args(argv)
    use_data(args.data)
    import torch

    cuda = torch.cuda.is_available()
    tiny = args.tiny or not (args.full or cuda)
    device = "cuda" if cuda and not args.tiny else "cpu"
    steps = args.steps or (3 if tiny else 30)
    args.out.mkdir(parents=True, exist_ok=True)
    check = Check(args.out, args.budget_s, "cpu-tiny" if tiny else "gpu", args.dry_run)
    print(f"GPU check: {'dry run, ' if args.dry_run else ''}{check.summary['mode']} on {device}, budget {args.budget_s:.0f} s, "
          f"data {os.environ.get('RECBENCH_DATA', 'RECBENCH_DATA default')}", flush=True)
    if args.dry_run:
        dry_run(check, steps, tiny)
    else:
        run_env(check)
        run_tests(check)
        run_speed(check, device, steps, tiny)
        run_full(check, device)
    check.write()
    print(f"summary: {args.out / 'summary.json'} ({check.summary['seconds']:.0f} s)")
    return 1 if check.failed() else 0


if __name__ == "__main__":
    sys.exit(main())
