"""Data-parallel training: two gloo processes under torchrun give one record, close to one process."""

import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.process]  # torchrun: several processes, each training

ARGS = ["run", "-p", "sasrec", "-d", "ml-100k", "--device", "cpu", "--epochs=3", "--n_embd=16", "--max_seq_len=30",
        "--dropout=0", "--loss=ce", "--batch_size=128", "--lr=0.005", "--eval_start_epoch=1"]


def single_and_two_processes(cli, home, args) -> tuple[dict, dict]:
    """The records of `args` run in one process and with `--nproc 2` (which starts torchrun with two);
    the metrics stay within 0.01."""
    cli(*args, "--results-dir", str(home / "single"))
    cli(*args, "--nproc", "2", "--results-dir", str(home / "ddp"))
    [single] = (home / "single" / "ml-100k").glob("*.json")
    [ddp] = (home / "ddp" / "ml-100k").glob("*.json")  # only rank 0 wrote a record
    single, ddp = json.loads(single.read_text()), json.loads(ddp.read_text())
    for metric in ("ndcg@10", "recall@10", "mrr"):
        assert abs(ddp["metrics"]["test"][metric] - single["metrics"]["test"][metric]) < 0.01, metric
    return single, ddp


def test_two_processes_write_one_record_close_to_single_process_sharing_every_length_bucketed_batch(cli, synthetic, home):
    """`recbench run --nproc 2` runs under torchrun: one record, of two processes. With bucket_pool > 0
    each rank trains on its share of every global batch (trimmed to its own longest history); the
    result stays close to one process's, and no rank waits for a batch it never gets. (The batches
    without length buckets: the next test and tests/test_nodes.py.)"""
    # 150 samples in batches of 128: the last one (22) splits 11 + 11
    single, ddp = single_and_two_processes(cli, home, [*ARGS, "--bucket_pool=4"])
    assert ddp["device"]["processes"] == 2 and single["device"]["processes"] == 1
    assert ddp["config"]["generator"]["bucket_pool"] == 4
    assert ddp["protocol"]["eval_users"] == single["protocol"]["eval_users"] == 150  # every (synthetic) user evaluated once


def test_two_processes_record_the_validation_a_fresh_ranking_of_best_pt_gives(cli, synthetic, home):
    """The record keeps the trainer's validation of the best epoch (ranked by both processes, gathered):
    an evaluation of best.pt by two processes gives the same metrics."""
    def torchrun(*args):
        proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "recbench",
                               *args], capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]

    torchrun(*ARGS, "--results-dir", str(home / "trained"))
    [trained] = (home / "trained" / "ml-100k").glob("*.json")
    trained = json.loads(trained.read_text())
    torchrun("run", "--eval_only=true", f"--checkpoint={trained['checkpoints']['best']}", "--results-dir", str(home / "evaluated"))
    [evaluated] = (home / "evaluated" / "ml-100k").glob("*.json")
    evaluated = json.loads(evaluated.read_text())
    assert evaluated["device"]["processes"] == 2 and evaluated["metrics"] == trained["metrics"]
