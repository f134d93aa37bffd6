"""Several "machines" on one: a network namespace per host, joined by a bridge, each with its own
hostname, for the tests that run recbench across machines (tuning workers sharing a database,
torchrun nodes).

A host is a network namespace (`ip netns`) with one interface, `eth0`, the far end of a veth pair
whose near end is a port of a bridge in the root namespace; hosts reach each other, and the bridge's
own address, over it, and nothing else. Commands run in the namespace under `unshare --uts` with the
host's name as hostname, so recbench sees another machine (socket.gethostname() names a tuning
worker; a trial of another host is not this machine's to recover), and with an /etc/hosts of its own
(/etc/netns/NS/hosts, which `ip netns exec` mounts) that resolves every host's name, as a network's
name service would (torchrun's rendezvous looks its own name up). Every command starts a process
group of its own; killing a host (`kill -9`) kills every process it started, their descendants, and
everything left in its namespace.

Creating namespaces needs root. Elsewhere `network(...)` falls back to process groups on loopback
(address 127.0.0.1, interface lo, the real hostname) and says why in `Network.fallback`.

The teardown (the `network` context manager's exit, on failure too) kills every host so, deletes the
namespaces (which deletes their veth pairs) and their /etc/netns folders, and the bridge if it made it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


@dataclass
class Host:
    name: str  # the hostname commands see
    address: str  # where the other hosts reach it
    interface: str  # its network interface (GLOO_SOCKET_IFNAME)
    netns: str | None  # its namespace; None: a process group on this machine's loopback
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def hostname(self) -> str:
        """The name its commands see (socket.gethostname()): its own, or, on loopback, this machine's."""
        return self.name if self.netns is not None else socket.gethostname()

    def popen(self, args: Sequence[str], **kw) -> subprocess.Popen:
        """Start `args` on this host, in a process group of its own."""
        cmd = list(args)
        if self.netns is not None:
            cmd = ["ip", "netns", "exec", self.netns, "unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', self.name, *cmd]
        proc = subprocess.Popen(cmd, start_new_session=True, **kw)
        self.procs.append(proc)
        return proc

    def kill(self) -> None:
        """kill -9 every process this host started, with every process they started (torchrun's workers
        start sessions of their own) and, for a namespace, every process in it: the machine is gone."""
        pids = {pid for proc in self.procs for pid in tree(proc.pid)}
        if self.netns is not None:
            pids |= {int(p) for p in ip("netns", "pids", self.netns, check=False).stdout.split()}
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for proc in self.procs:
            proc.wait()


def tree(root: int) -> set[int]:
    """`root` and all its descendants (from /proc: each process's parent)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            text = stat.read_text()
            ppid = int(text[text.rindex(")") + 2:].split()[1])  # after "pid (comm) state"
            children.setdefault(ppid, []).append(int(stat.parent.name))
    out, todo = set(), [root]
    while todo:
        pid = todo.pop()
        out.add(pid)
        todo.extend(children.get(pid, ()))
    return out


@dataclass
class Network:
    hosts: list[Host]
    server: str  # the address the hosts reach this (root) namespace at: the bridge's, or 127.0.0.1
    fallback: str | None  # why the hosts are process groups on loopback, not namespaces (None: they are namespaces)


def namespaces_unavailable() -> str | None:
    """Why network namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "not root: network namespaces need root"
    if shutil.which("ip") is None or shutil.which("unshare") is None:
        return "`ip` (iproute2) or `unshare` (util-linux) is missing"
    return None


def bridge_address(bridge: str) -> ipaddress.IPv4Interface:
    [info] = json.loads(ip("-j", "-4", "addr", "show", "dev", bridge).stdout)
    [addr] = [a for a in info["addr_info"] if a["family"] == "inet"]
    return ipaddress.IPv4Interface(f"{addr['local']}/{addr['prefixlen']}")


@contextlib.contextmanager
def network(n: int, bridge: str | None = None, loopback_because: str | None = None) -> Iterator[Network]:
    """`n` hosts, as namespaces on `bridge` (an existing bridge with an IPv4 address, e.g. the one
    .ci/run makes for its PostgreSQL server; None: one made here, on 10.232.X.0/24, deleted after),
    or, where namespaces cannot be made or `loopback_because` says so, as process groups on loopback."""
    tag = str(os.getpid())
    why = loopback_because or namespaces_unavailable()
    hosts: list[Host] = []
    made_bridge = None
    try:
        if why is not None:
            hosts = [Host(f"host-{chr(97 + i)}", "127.0.0.1", "lo", None) for i in range(n)]
            yield Network(hosts, "127.0.0.1", why)
            return
        if bridge is None:
            bridge = made_bridge = f"rbbr{tag}"
            ip("link", "add", bridge, "type", "bridge")
            ip("addr", "add", f"10.232.{int(tag) % 250}.1/24", "dev", bridge)
            ip("link", "set", bridge, "up")
        subnet = bridge_address(bridge)
        free = (a for a in subnet.network.hosts() if a != subnet.ip and int(a) & 0xFF >= 100)  # .100 up: clear of the server's
        for i in range(n):
            name, ns, veth = f"host-{chr(97 + i)}", f"rb{tag}-{i}", f"rbv{tag}-{i}"
            host = Host(name, str(next(free)), "eth0", ns)
            ip("netns", "add", ns)
            hosts.append(host)
            ip("link", "add", veth, "type", "veth", "peer", "name", f"{veth}p")
            ip("link", "set", f"{veth}p", "netns", ns)
            ip("-n", ns, "link", "set", f"{veth}p", "name", "eth0")
            ip("-n", ns, "addr", "add", f"{host.address}/{subnet.network.prefixlen}", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
            ip("-n", ns, "link", "set", "lo", "up")
            ip("link", "set", veth, "master", bridge)
            ip("link", "set", veth, "up")
        names = "".join(f"{h.address} {h.name}\n" for h in hosts)
        for host in hosts:  # `ip netns exec` mounts /etc/netns/NS/hosts over /etc/hosts: the hosts know each other by name
            folder = Path("/etc/netns") / host.netns
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "hosts").write_text(f"127.0.0.1 localhost\n{names}")
        yield Network(hosts, str(subnet.ip), None)
    finally:
        for host in hosts:
            host.kill()
            if host.netns is not None:
                ip("netns", "del", host.netns, check=False)  # deletes its veth pair
                shutil.rmtree(Path("/etc/netns") / host.netns, ignore_errors=True)
                ip("link", "del", f"rbv{tag}-{hosts.index(host)}", check=False)  # a pair made but never moved into it
        if made_bridge is not None:
            ip("link", "del", made_bridge, check=False)
