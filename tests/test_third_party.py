"""Third-party plugin packages, installed for real with pip: one that works and one that is broken."""

import json


def test_installed_plugin_is_listed_and_runs(cli_with_plugins, synthetic, home):
    data = cli_with_plugins.json("plugins", "--json")
    markov = next(p for p in data["plugins"] if p["name"] == "markov")
    assert (markov["kind"], markov["package"], markov["version"]) == ("generator", "recbench-markov", "0.1.0")
    out = cli_with_plugins("run", "--plugin", "markov", "--dataset", "ml-100k", "--pop_weight=0.1").stdout
    assert "ndcg@10" in out
    [path] = (home / "home" / "results" / "ml-100k").glob("*.json")
    record = json.loads(path.read_text())
    assert record["generator"] == {"name": "markov", "package": "recbench-markov", "version": "0.1.0"}
    assert record["config"]["generator"]["pop_weight"] == 0.1


def test_broken_plugin_is_reported_and_breaks_nothing(cli_with_plugins, synthetic):
    data = cli_with_plugins.json("plugins", "--json")
    [broken] = [f for f in data["failures"] if f["package"] == "recbench-broken"]
    assert "not-installed-anywhere" in broken["error"]
    table = cli_with_plugins("plugins").stdout
    assert "recbench-broken" in table and "failed to load" in table
    cli_with_plugins("run", "-p", "pop", "-d", "ml-100k")
    assert "pop" in cli_with_plugins("leaderboard").stdout
    assert "ml-100k" in cli_with_plugins("datasets").stdout


def test_autoloading_can_be_turned_off(cli_with_plugins, monkeypatch):
    monkeypatch.setenv("RECBENCH_NO_PLUGINS", "1")
    data = cli_with_plugins.json("plugins", "--json")
    assert "markov" not in {p["name"] for p in data["plugins"]} and data["failures"] == []
