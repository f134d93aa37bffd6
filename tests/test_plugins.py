"""The plugin registry: built-ins registered like third-party plugins, clashes and failures isolated."""

from dataclasses import dataclass

import pytest

from recbench import hookimpl
from recbench import registry as plugin_registry
from recbench.api import Generator, GeneratorConfig
from recbench.errors import UsageError


def make_generator(name):
    @dataclass
    class Config(GeneratorConfig):
        pass

    return type(name.title(), (Generator,), {"name": name, "description": f"test generator {name}", "Config": Config})()


class GoodPlugin:
    @hookimpl
    def register_generators(self, register):
        register(make_generator("copycat"))


class ClashingPlugin:
    @hookimpl
    def register_generators(self, register):
        register(make_generator("pop"))  # the built-in's name
        register(make_generator("unique_one"))  # still registered after the clash


class FailingPlugin:
    @hookimpl
    def register_datasets(self, register):
        raise RuntimeError("cannot reach my server")


class NamelessPlugin:
    @hookimpl
    def register_generators(self, register):
        register(object())


def test_builtins_are_registered_with_package_and_version():
    registry = plugin_registry.load(third_party=False)
    pop = registry.entry("generator", "pop")
    assert pop.package == "recbench" and pop.version and pop.plugin == "recbench_plugins.pop"
    assert registry.entry("dataset", "ml-100k").kind == "dataset"
    assert registry.failures == []


def test_extra_plugins_register_through_the_same_path():
    registry = plugin_registry.load(third_party=False, extra=[("good", GoodPlugin(), "good-pkg", "1.2")])
    entry = registry.entry("generator", "copycat")
    assert (entry.package, entry.version) == ("good-pkg", "1.2")


def test_name_clash_names_both_packages_and_keeps_the_first():
    registry = plugin_registry.load(third_party=False, extra=[("clash", ClashingPlugin(), "clash-pkg", "0.1")])
    assert registry.entry("generator", "pop").package == "recbench"
    assert registry.entry("generator", "unique_one").package == "clash-pkg"
    [failure] = registry.failures
    assert "clash-pkg" in failure.error and "'recbench'" in failure.error and "pop" in failure.error


def test_failing_and_malformed_plugins_are_reported_not_raised():
    registry = plugin_registry.load(
        third_party=False,
        extra=[("failing", FailingPlugin(), "failing-pkg", "0.1"), ("nameless", NamelessPlugin(), "nameless-pkg", "0.1")],
    )
    errors = {f.package: f.error for f in registry.failures}
    assert "cannot reach my server" in errors["failing-pkg"]
    assert "name" in errors["nameless-pkg"]
    assert "pop" in registry.names("generator")


def test_unknown_name_lists_valid_names():
    registry = plugin_registry.load(third_party=False)
    with pytest.raises(UsageError) as err:
        registry.get("generator", "popp")
    assert "Did you mean 'pop'" in str(err.value) and "Valid generators: " in str(err.value)


def test_aliases_resolve_case_insensitively():
    registry = plugin_registry.load(third_party=False)
    assert registry.entry("dataset", "ML100K").name == "ml-100k"


def test_environment_variable_turns_off_third_party_loading(monkeypatch):
    calls = []
    monkeypatch.setattr(plugin_registry, "_third_party", lambda: calls.append(1) or [])
    monkeypatch.setenv("RECBENCH_NO_PLUGINS", "1")
    plugin_registry.load()
    assert calls == []
    monkeypatch.setenv("RECBENCH_NO_PLUGINS", "0")
    plugin_registry.load()
    assert calls == [1]


class AliasClashPlugin:
    @hookimpl
    def register_datasets(self, register):
        from recbench_plugins.movielens import MovieLens100K

        clone = type("Clone", (MovieLens100K,), {"name": "my-movies", "aliases": ("ml100k",)})()  # ml-100k's alias
        register(clone)
        named_like_an_alias = type("Other", (MovieLens100K,), {"name": "movielens-100k", "aliases": ()})()
        register(named_like_an_alias)


def test_a_name_or_alias_that_clashes_with_a_builtin_alias_is_refused():
    registry = plugin_registry.load(third_party=False, extra=[("aliases", AliasClashPlugin(), "alias-pkg", "0.1")])
    assert registry.entry("dataset", "ml100k").package == "recbench"  # the alias still means the built-in
    errors = [f.error for f in registry.failures]
    assert len(errors) == 2 and "my-movies" not in registry.names("dataset") and "movielens-100k" not in registry.names("dataset")
    assert "alias 'ml100k' of 'my-movies' from package 'alias-pkg' clashes with dataset 'ml-100k'" in errors[0]
    assert "name 'movielens-100k' from package 'alias-pkg' clashes with dataset 'ml-100k'" in errors[1]


def test_unknown_name_mentions_plugin_packages_that_failed_to_load():
    registry = plugin_registry.load(third_party=False, extra=[("failing", FailingPlugin(), "failing-pkg", "0.1")])
    with pytest.raises(UsageError, match=r"Unknown dataset 'mydata'.*failed to load: failing-pkg \(see `recbench plugins`\)"):
        registry.entry("dataset", "mydata")


def test_the_docs_list_every_built_in_dataset_with_the_aliases_it_accepts():
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "datasets.md").read_text(encoding="utf-8")
    table = page.split("| name (aliases) |", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^\| `([^`]+)`(?: \(([^)]*)\))? \|", table, flags=re.M)
    listed = {name: tuple(re.findall(r"`([^`]+)`", aliases)) for name, aliases in rows}
    registry = plugin_registry.load(third_party=False)
    assert listed == {e.name: tuple(e.obj.aliases) for e in registry.entries["dataset"].values()}
    for name, aliases in listed.items():
        assert all(registry.entry("dataset", a.upper()).name == name for a in aliases)  # in any case
