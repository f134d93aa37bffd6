"""Training across machines: `torchrun --nnodes 2 --nproc_per_node 1 --rdzv_backend c10d` on two hosts
(network namespaces, tests/hosts.py; gloo on the CPU over each host's eth0) gives the record of the
single-machine two-process run of the same seed, written by rank 0 alone; a node that dies or stops
answering ends the run on the other with a message naming it; a node that never joins is a
rendezvous timeout."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import hosts
import pytest
from test_distributed import ARGS

pytestmark = [pytest.mark.slow, pytest.mark.process, pytest.mark.xdist_group("hosts")]  # torchrun on two hosts, each training; one
# worker runs every test that makes hosts (they share .ci/run's bridge and its addresses)

PORT = 29500


def node_env(tmp_path: Path, host: hosts.Host, **extra: str) -> dict[str, str]:
    """A machine of its own: its RECBENCH_HOME and prepared data; the network interface gloo uses."""
    return {**os.environ, "RECBENCH_HOME": str(tmp_path / host.name), "RECBENCH_DATA": str(tmp_path / host.name / "data"),
            "GLOO_SOCKET_IFNAME": host.interface, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **extra}


def start_nodes(net: hosts.Network, tmp_path: Path, args: list[str], joining: int = 2, rdzv_conf: str = "join_timeout=60",
                **env: str) -> list[subprocess.Popen]:
    """`torchrun --nnodes 2` of `recbench ARGS` on the first `joining` hosts, the rendezvous on the first."""
    if net.fallback:
        warnings.warn(f"two process groups on loopback instead of two network namespaces ({net.fallback})", stacklevel=2)
    endpoint = f"{net.hosts[0].address}:{PORT if not net.fallback else free_port()}"
    procs = []
    for host in net.hosts[:joining]:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1", "--rdzv_backend", "c10d",
               "--rdzv_endpoint", endpoint, "--rdzv_id", "recbench-test", "--rdzv_conf", rdzv_conf,
               "-m", "recbench", *args, "--results-dir", str(tmp_path / host.name / "results")]
        log = (tmp_path / f"{host.name}.out").open("w")
        procs.append(host.popen(cmd, env=node_env(tmp_path, host, **env), stdout=log, stderr=subprocess.STDOUT, text=True))
    return procs


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def output(tmp_path: Path, host: hosts.Host) -> str:
    return (tmp_path / f"{host.name}.out").read_text()


def test_two_nodes_give_the_record_of_one_node_with_two_processes(synthetic, home, tmp_path):
    single = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "recbench",
                             *ARGS, "--results-dir", str(tmp_path / "single")], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert single.returncode == 0, single.stderr[-3000:]
    with hosts.network(2) as net:
        procs = start_nodes(net, tmp_path, ARGS)
        codes = [p.wait(timeout=300) for p in procs]
        a, b = net.hosts
        assert codes == [0, 0], output(tmp_path, a)[-3000:] + output(tmp_path, b)[-3000:]
    [one] = (tmp_path / "single" / "ml-100k").glob("*.json")
    [two] = [path for host in (a, b) for path in (tmp_path / host.name / "results" / "ml-100k").glob("*.json")]  # rank 0's alone
    writer, other = (a, b) if (tmp_path / a.name) in two.parents else (b, a)  # the rendezvous ranks the nodes
    one, two = json.loads(one.read_text()), json.loads(two.read_text())
    # the same shards, the same gradients summed in the same order: the same model, bit for bit
    assert two["per_user"] == one["per_user"] and two["metrics"] == one["metrics"]
    assert two["train"]["best_epoch"] == one["train"]["best_epoch"] and two["device"]["processes"] == 2
    assert Path(two["checkpoints"]["best"]).is_file() and str(tmp_path / writer.name) in two["checkpoints"]["best"]
    written = sorted(p.relative_to(tmp_path / other.name).parts[0] for p in (tmp_path / other.name).rglob("*") if p.is_file())
    assert set(written) <= {"data"}, written  # the other node prepared its data, and wrote no record, run folder or checkpoint


@pytest.mark.parametrize("how", ["killed", "frozen"])
def test_a_node_that_dies_or_stops_answering_ends_the_run_on_the_other_naming_it(synthetic, home, tmp_path, how):
    """kill -9 of every process of host-b: host-a's next collective fails at once (the connection is
    reset). SIGSTOP of them (a machine that hangs, a network that drops packets): it fails after
    RECBENCH_DIST_TIMEOUT seconds. Either way rank 0 says which rank went away and exits 1."""
    args = [*[a for a in ARGS if not a.startswith(("--epochs", "--batch_size"))], "--epochs=500", "--batch_size=16", "--patience=1000"]
    with hosts.network(2) as net:
        a, b = net.hosts
        procs = start_nodes(net, tmp_path, args, RECBENCH_DIST_TIMEOUT="8")
        deadline = time.time() + 120
        while "epoch 2/" not in output(tmp_path, a) and time.time() < deadline and procs[0].poll() is None:
            time.sleep(0.2)
        assert "epoch 2/" in output(tmp_path, a), output(tmp_path, a)[-3000:]
        stopped = time.time()
        if how == "killed":
            b.kill()
        else:
            for pid in hosts.tree(procs[1].pid) | ({int(p) for p in hosts.ip("netns", "pids", b.netns).stdout.split()} if b.netns else set()):
                os.kill(pid, signal.SIGSTOP)
        assert procs[0].wait(timeout=120) != 0
        took = time.time() - stopped
    out = output(tmp_path, a)
    message = " ".join(out[out.index("Error: Data-parallel training stopped"):].split())
    me, them = rf"rank [01] of 2 \({a.hostname}\)", rf"rank [01] \({b.hostname}, {b.address}\)"  # the rendezvous ranks the nodes
    if how == "killed":
        assert re.search(rf"{me} lost {them}: its process or machine ended", message) and took < 60, message
    else:
        assert re.search(rf"{me} got no answer from {them} within 8 s \(RECBENCH_DIST_TIMEOUT\)", message), message
        assert 8 <= took < 60, took
    assert not list((tmp_path / a.name / "results").rglob("*.json"))


def test_a_node_that_never_joins_is_a_rendezvous_timeout(synthetic, home, tmp_path):
    with hosts.network(2) as net:
        start = time.time()
        [proc] = start_nodes(net, tmp_path, ARGS, joining=1, rdzv_conf="join_timeout=10")
        code = proc.wait(timeout=120)
        took = time.time() - start
        out = output(tmp_path, net.hosts[0])
    assert code != 0 and "RendezvousTimeoutError" in out and took < 60, out[-3000:]
    assert "ml-100k:" not in out  # recbench never started: the rendezvous waits for both nodes first
