"""Shared fixtures: an isolated recbench home per test, the real data mirror, the CLI as a user runs it.

The `cli` fixture runs `recbench ARGS` through its entry point in the test process (typer's
CliRunner: the exit code, stdout and stderr apart, no interpreter start-up or imports per call); a
test marked `process` gets it in a process of its own instead, as `python -m recbench`: signals,
torchrun, worker processes, locks held by another process, output to real file descriptors.
`cli_with_plugins` always starts a process: the pip-installed example packages are found through
PYTHONPATH and their entry points.

The `slow` marker (pyproject.toml) sets apart what the quick subset, `pytest -m "not slow"`, leaves
out. Every test that reads the real data (the `mirror` fixture), pip-installs the example packages
(`example_plugins`) or runs recbench in a process of its own (`cli` under the `process` marker:
seconds of start-up before any work) is marked here, by the fixtures and markers it uses, so that a
new one is too; data-parallel runs, worker processes and training runs, through the CLI or not,
carry the marker themselves.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


SLOW_FIXTURES = ("mirror", "example_plugins")  # the real data; a pip install

# pytest-xdist (`-n 2`, the README's test command) starts its workers with COLUMNS=80, the width of
# no terminal; a rich Console made at import (recbench.cli's modules) would keep 80 for good, where
# a test run without workers, like a user's shell, decides the width per call (InProcessCLI: 200).
# Each worker computes on one thread (torch, OpenMP, and the recbench processes tests start), so that
# two workers share two cores instead of spinning four threads on them.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.pop("COLUMNS", None)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_collection_modifyitems(items):
    for item in items:
        names = getattr(item, "fixturenames", ())
        in_process = "cli" in names and item.get_closest_marker("process") is not None  # a recbench process per call
        if in_process or any(name in names for name in SLOW_FIXTURES):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """RECBENCH_HOME and RECBENCH_DATA in a fresh folder; downloads switched off."""
    monkeypatch.setenv("RECBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RECBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("RECBENCH_OFFLINE", "1")
    monkeypatch.delenv("RECBENCH_DATA_MIRROR", raising=False)
    return tmp_path


@pytest.fixture
def mirror(home, monkeypatch):
    """The real data in ../shared/data as RECBENCH_DATA_MIRROR; skips where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (see README: running the tests)")
    monkeypatch.setenv("RECBENCH_DATA_MIRROR", str(SHARED_DATA))
    return SHARED_DATA


def with_example_plugins():
    """The built-in plugins and the example packages' (tests/packages), loaded from their source
    folders: the conformance suites run over every plugin a user could register."""
    import importlib

    from recbench import registry as plugin_registry

    extra = []
    for package, module in (("recbench-example", "recbench_example"), ("recbench-markov", "recbench_markov")):
        folder = str(ROOT / "tests" / "packages" / package)
        if folder not in sys.path:
            sys.path.append(folder)
        extra.append((module, importlib.import_module(module), package, "0.1.0"))
    return plugin_registry.load(third_party=False, extra=extra)


@pytest.fixture(scope="session")
def synthetic_folder(tmp_path_factory):
    """A data mirror holding the synthetic dataset (tests/synthetic.py) in ml-100k's upstream form."""
    from synthetic import write_ml100k

    return write_ml100k(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture
def synthetic(home, monkeypatch, synthetic_folder):
    """The synthetic dataset as RECBENCH_DATA_MIRROR: `--dataset ml-100k` reads it (150 users, 120
    items with text). For tests that need some data, not MovieLens itself; runs everywhere."""
    monkeypatch.setenv("RECBENCH_DATA_MIRROR", str(synthetic_folder))
    return synthetic_folder


class CLI:
    """Runs `python -m recbench ...` in a subprocess with the test's environment."""

    def __init__(self, extra_path: str | None = None):
        self.extra_path = extra_path

    def __call__(self, *args: str, check: int | None = 0, timeout: float = 600) -> subprocess.CompletedProcess:
        env = dict(os.environ)
        if self.extra_path:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [self.extra_path, env.get("PYTHONPATH")]))
        env["COLUMNS"] = "200"
        proc = subprocess.run([sys.executable, "-m", "recbench", *args], capture_output=True, text=True, env=env, timeout=timeout)
        if check is not None and proc.returncode != check:
            raise AssertionError(
                f"recbench {' '.join(args)} exited {proc.returncode}, expected {check}\n"
                f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
            )
        return proc

    def json(self, *args: str):
        return json.loads(self(*args).stdout)


class InProcessCLI(CLI):
    """Runs `recbench ARGS` through recbench.cli.main in this process, under typer's CliRunner, and
    answers as CLI does: a CompletedProcess with the exit code, stdout and stderr.

    Each call starts as a new process would: the plugin registry loaded anew (the environment may
    have changed, e.g. RECBENCH_NO_PLUGINS), sys.argv[1:] the arguments, COLUMNS=200, stdout and
    stderr its own. It leaves the environment, sys.argv and torch's thread count as it found them,
    and a logging handler made during the call writes to whatever stderr is current afterwards, not
    to the call's closed stream. An exception main() lets through is a traceback on stderr and exit
    code 1, as in a process. `timeout` does not apply: a call that hangs hangs the test."""

    def __call__(self, *args: str, check: int | None = 0, timeout: float = 600) -> subprocess.CompletedProcess:
        import traceback

        from typer.testing import CliRunner

        from recbench import registry as plugin_registry

        environ, argv, threads = dict(os.environ), sys.argv, torch_threads()
        plugin_registry.reset()
        code = 0
        try:
            with CliRunner().isolation(env={"COLUMNS": "200"}) as (out, err, _):
                streams = (sys.stdout, sys.stderr)
                sys.argv = ["recbench", *args]
                try:
                    from recbench.cli import main

                    main()
                except SystemExit as exc:
                    code = exit_code(exc.code)
                except Exception:  # noqa: BLE001 - what an uncaught exception does to a process
                    traceback.print_exc()
                    code = 1
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    follow_current_streams(streams)
                    stdout, stderr = text(out.getvalue()), text(err.getvalue())
        finally:
            sys.argv = argv
            os.environ.clear()
            os.environ.update(environ)
            if threads is not None and torch_threads() != threads:
                sys.modules["torch"].set_num_threads(threads)
            plugin_registry.reset()
        proc = subprocess.CompletedProcess(["recbench", *args], code, stdout, stderr)
        if check is not None and proc.returncode != check:
            raise AssertionError(
                f"recbench {' '.join(args)} exited {proc.returncode}, expected {check}\n"
                f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
            )
        return proc


def torch_threads() -> int | None:
    """torch's intra-op thread count, if torch is imported (a run sets it)."""
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None else None


def exit_code(code) -> int:
    """The exit status of a process that raised SystemExit(code); a message is printed to stderr."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def text(data: bytes) -> str:
    """Output as subprocess.run(text=True) reads it: universal newlines."""
    return data.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")


class CurrentStream:
    """A stream that writes to sys.stdout or sys.stderr as they are at the time of writing."""

    def __init__(self, name: str):
        self.name = name

    def write(self, data: str) -> int:
        return getattr(sys, self.name).write(data)

    def flush(self) -> None:
        getattr(sys, self.name).flush()


def follow_current_streams(streams: tuple) -> None:
    """Point the logging handlers that write to `streams` (the call's stdout, stderr) at the current ones."""
    import logging

    loggers = [logging.getLogger(), *(lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger))]
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream in streams:
                handler.setStream(CurrentStream("stdout" if handler.stream is streams[0] else "stderr"))


@pytest.fixture
def cli(home, request):
    """recbench as a user runs it: in this process, or in a process of its own for a test marked `process`."""
    return CLI() if request.node.get_closest_marker("process") else InProcessCLI()


@pytest.fixture(scope="session")
def example_plugins(tmp_path_factory):
    """The example plugin packages under tests/packages, pip-installed into a temporary folder."""
    target = tmp_path_factory.mktemp("site")
    packages = [ROOT / "tests" / "packages" / name for name in ("recbench-markov", "recbench-example", "recbench-broken")]
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", str(target), *map(str, packages)],
        check=True,
        capture_output=True,
    )
    return target


@pytest.fixture
def cli_with_plugins(home, example_plugins):
    return CLI(str(example_plugins))
