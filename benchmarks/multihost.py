"""The cost of working across machines: tuning against PostgreSQL instead of SQLite, and training on
two nodes instead of two processes on one.

    python benchmarks/multihost.py --postgres postgresql://USER@HOST:PORT/DB [--trials 8] [--repeats 2]

Tuning: the same tiny study (sasrec, a random search over lr and dropout, one worker, the tests'
tiny model) run to `--trials` trials with its storage in a fresh SQLite file and in a fresh study on
the PostgreSQL server; printed per storage: the mean seconds of a trial (its own start to end, as
the storage recorded them) and of a trial's share of the search (first start to last end over the
number of trials), which takes in the storage's work between trials (asking, claiming, heartbeats).

Training: the two-process run of tests/test_distributed.py (sasrec, three epochs) under torchrun,
once with `--standalone --nproc_per_node 2` on this machine and once with `--nnodes 2
--nproc_per_node 1 --rdzv_backend c10d` on two hosts, network namespaces joined by a bridge
(tests/hosts.py; needs root, otherwise two process groups on loopback); printed: the wall seconds
of each command, from start to the last process's end.

Both run on the synthetic dataset of the tests (tests/synthetic.py), so that the storage's and the
network's share is not drowned in training. Every figure names the machine.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import hosts  # noqa: E402 - tests/hosts.py: the namespaced hosts
from synthetic import write_ml100k  # noqa: E402
from test_distributed import ARGS as RUN_ARGS  # noqa: E402
from test_tune import SPACE, TINY  # noqa: E402


def machine() -> str:
    """The CPU model, its cores, whether it has bf16 instructions, and how busy the machine was."""
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown CPU")
    flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
    bf16 = "with" if "avx512_bf16" in flags else "without"
    return f"{model}, {os.cpu_count()} cores, {bf16} AVX512-BF16, load average {os.getloadavg()[0]:.1f} (the last minute)"


def tune_seconds(storage: str, study: str, trials: int, env: dict[str, str], folder: Path) -> tuple[float, float]:
    """(mean seconds of a trial, seconds of the search per trial) of one tiny study on `storage`."""
    import optuna

    space = folder / "space.yaml"
    space.write_text(SPACE)
    cmd = [sys.executable, "-m", "recbench", "tune", "-p", "sasrec", "-d", "ml-100k", "--storage", storage, "--study-name", study,
           "--n-trials", str(trials), "--space", str(space), "--sampler", "random", "--pruner", "none", "--device", "cpu",
           "--results-dir", str(folder / "results"), *[f"--{k}={v}" for k, v in TINY.items()]]
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    done = [t for t in optuna.load_study(study_name=study, storage=storage).get_trials() if t.datetime_complete]
    each = statistics.mean((t.datetime_complete - t.datetime_start).total_seconds() for t in done)
    span = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds() / len(done)
    return each, span


def single_node_seconds(env: dict[str, str], folder: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "recbench", *RUN_ARGS,
                    "--results-dir", str(folder / "single")], env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def two_node_seconds(env: dict[str, str], folder: Path) -> tuple[float, str | None]:
    with hosts.network(2) as net:
        endpoint = f"{net.hosts[0].address}:29500" if not net.fallback else "127.0.0.1:29511"
        run_id = uuid.uuid4().hex[:8]  # the rendezvous's name, the same on both nodes
        start = time.perf_counter()
        procs = [host.popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1", "--rdzv_backend",
                             "c10d", "--rdzv_endpoint", endpoint, "--rdzv_id", run_id, "--rdzv_conf", "join_timeout=120", "-m", "recbench", *RUN_ARGS,
                             "--results-dir", str(folder / host.name)],
                            env={**env, "RECBENCH_HOME": str(folder / host.name), "GLOO_SOCKET_IFNAME": host.interface},
                            stdout=(folder / f"{host.name}.out").open("w"), stderr=subprocess.STDOUT)
                 for host in net.hosts]
        codes = [p.wait() for p in procs]
        took = time.perf_counter() - start
        if codes != [0, 0]:
            raise SystemExit(f"the two-node run failed: exit codes {codes}\n" + (folder / f"{net.hosts[0].name}.out").read_text()[-3000:])
        return took, net.fallback


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", default=os.environ.get("RECBENCH_TEST_POSTGRES"), help="a PostgreSQL URL (default: RECBENCH_TEST_POSTGRES)")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2, help="each measurement this many times, alternating; the median is printed")
    args = parser.parse_args()
    if not args.postgres:
        raise SystemExit("--postgres URL (or RECBENCH_TEST_POSTGRES) is needed")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = {**os.environ, "RECBENCH_HOME": str(folder / "home"), "RECBENCH_DATA": str(folder / "data"), "RECBENCH_OFFLINE": "1",
               "RECBENCH_DATA_MIRROR": str(write_ml100k(folder / "mirror")), "OMP_NUM_THREADS": "1"}
        tuning: dict[str, list[tuple[float, float]]] = {"sqlite": [], "postgresql": []}
        training: dict[str, list[float]] = {"one node, two processes": [], "two nodes, one process each": []}
        fallback = None
        for r in range(args.repeats):
            study = f"bench-{uuid.uuid4().hex[:8]}"
            tuning["sqlite"].append(tune_seconds(f"sqlite:///{folder / f'studies{r}.db'}", study, args.trials, env, folder))
            tuning["postgresql"].append(tune_seconds(args.postgres, study, args.trials, env, folder))
            training["one node, two processes"].append(single_node_seconds(env, folder))
            took, fallback = two_node_seconds(env, folder)
            training["two nodes, one process each"].append(took)
    print(f"machine: {machine()}")
    print(f"tuning, {args.trials} trials of a tiny sasrec study, one worker (median of {args.repeats}):")
    for storage, runs in tuning.items():
        each, span = statistics.median(e for e, _ in runs), statistics.median(s for _, s in runs)
        print(f"  {storage:<11} {each:6.2f} s per trial (its own start to end), {span:6.2f} s of the search per trial")
    print(f"training, the tiny two-process run of tests/test_distributed.py (median of {args.repeats}):")
    for setting, runs in training.items():
        print(f"  {setting:<28} {statistics.median(runs):6.1f} s")
    if fallback:
        print(f"  (two nodes as process groups on loopback: {fallback})")


if __name__ == "__main__":
    main()
