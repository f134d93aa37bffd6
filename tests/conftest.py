"""Shared fixtures: an isolated recbench home per test, the real data mirror, the CLI as a user runs it.

The `slow` marker (pyproject.toml) sets apart what the quick subset, `pytest -m "not slow"`, leaves
out. Every test that reads the real data (the `mirror` fixture), pip-installs the example packages
(`example_plugins`) or runs recbench as a user does, in a process of its own (`cli`: seconds of
start-up before any work, and most of them then prepare data or train) is marked here, by the
fixtures it uses, so that a new one is too; data-parallel runs, worker processes and training
runs inside the test process carry the marker themselves.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


SLOW_FIXTURES = ("mirror", "example_plugins", "cli")  # the real data; a pip install; a recbench process per call


def pytest_collection_modifyitems(items):
    for item in items:
        if any(name in getattr(item, "fixturenames", ()) for name in SLOW_FIXTURES):
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
    """The built-in plugins and the example packages' (tests/plugins), loaded from their source
    folders: the conformance suites run over every plugin a user could register."""
    import importlib

    from recbench import plugins

    extra = []
    for package, module in (("recbench-example", "recbench_example"), ("recbench-markov", "recbench_markov")):
        folder = str(ROOT / "tests" / "plugins" / package)
        if folder not in sys.path:
            sys.path.append(folder)
        extra.append((module, importlib.import_module(module), package, "0.1.0"))
    return plugins.load(third_party=False, extra=extra)


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


@pytest.fixture
def cli(home):
    return CLI()


@pytest.fixture(scope="session")
def example_plugins(tmp_path_factory):
    """The example plugin packages under tests/plugins, pip-installed into a temporary folder."""
    target = tmp_path_factory.mktemp("site")
    packages = [ROOT / "tests" / "plugins" / name for name in ("recbench-markov", "recbench-example", "recbench-broken")]
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", str(target), *map(str, packages)],
        check=True,
        capture_output=True,
    )
    return target


@pytest.fixture
def cli_with_plugins(home, example_plugins):
    return CLI(str(example_plugins))
