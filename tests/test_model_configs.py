"""The built-in models take their config whole, as nanoGPT's GPT(config): a hyperparameter is written
once, as a commented field of its generator's config, and not again as a constructor parameter that
build() fills key by key. A constructor that grows past a handful of parameters is that pattern
coming back."""

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest
from torch import nn

import recbench_plugins

MAX_PARAMETERS = 6  # besides self: the config, the data's shapes (items, codes, history length) and a part or two


def plugin_modules():
    """Every built-in plugin module and every network module (recbench_plugins.models)."""
    return [importlib.import_module(m.name) for m in pkgutil.walk_packages(recbench_plugins.__path__, "recbench_plugins.")]


def plugin_module_classes():
    return [obj for module in plugin_modules() for obj in vars(module).values()
            if inspect.isclass(obj) and issubclass(obj, nn.Module) and obj.__module__ == module.__name__]


@pytest.mark.parametrize("cls", plugin_module_classes(), ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_no_model_constructor_takes_more_than_six_parameters(cls):
    parameters = list(inspect.signature(cls.__init__).parameters)[1:]
    assert len(parameters) <= MAX_PARAMETERS, (
        f"{cls.__qualname__}({', '.join(parameters)}) takes {len(parameters)} parameters: pass the config whole")


def test_the_classes_checked_include_every_generators_model():
    names = {c.__qualname__ for c in plugin_module_classes()}
    assert {"SASRec", "HSTU", "LlamaRec", "DiffGRM", "ARGRM", "RPG", "HistoryEncoder", "TokenEncoder", "Block"} <= names


def test_built_in_plugins_do_not_import_the_trainer():
    """Plugins build on recbench.api and their shared layers, as a third-party plugin does; the trainer's
    internals stay free to change."""
    for module in plugin_modules():
        tree = ast.parse(Path(module.__file__).read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        assert "recbench.train" not in imported, module.__name__
