"""Each package's ``__all__`` is its whole public API: complete, and every name real."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import bus_contracts
import bus_contracts.messages

# Modules whose names are read through the module (``bounds.MAX_EPOCHS``), which
# the package exports itself instead of each constant.
NAMESPACE_MODULES = {"bus_contracts.bounds": "bounds"}


def _public_names_defined_in(module: ModuleType) -> set[str]:
    """Top-level names a module defines itself (not the ones it imports)."""
    tree = ast.parse(inspect.getsource(module))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {name for name in names if not name.startswith("_")}


def _modules(package: ModuleType) -> list[ModuleType]:
    return [
        importlib.import_module(f"{package.__name__}.{info.name}")
        for info in pkgutil.iter_modules(package.__path__)
        if not info.ispkg
    ]


@pytest.mark.parametrize(
    "package", [bus_contracts, bus_contracts.messages], ids=lambda p: p.__name__
)
def test_all_lists_every_public_name_of_every_module(package: ModuleType) -> None:
    exported = set(package.__all__)
    for module in _modules(package):
        if module.__name__ in NAMESPACE_MODULES:
            assert NAMESPACE_MODULES[module.__name__] in exported
            continue
        missing = _public_names_defined_in(module) - exported
        assert not missing, f"{module.__name__} defines {sorted(missing)} but __all__ lacks them"


@pytest.mark.parametrize(
    "package", [bus_contracts, bus_contracts.messages], ids=lambda p: p.__name__
)
def test_every_name_in_all_resolves_once(package: ModuleType) -> None:
    assert len(package.__all__) == len(set(package.__all__))
    namespace: dict[str, object] = {}
    exec(f"from {package.__name__} import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(package.__all__)


def test_top_level_package_re_exports_all_messages() -> None:
    assert set(bus_contracts.messages.__all__) <= set(bus_contracts.__all__)
    for name in bus_contracts.messages.__all__:
        assert getattr(bus_contracts, name) is getattr(bus_contracts.messages, name)


def test_namespace_modules_are_the_modules_themselves() -> None:
    for module_name, exported_as in NAMESPACE_MODULES.items():
        assert getattr(bus_contracts, exported_as) is importlib.import_module(module_name)


def test_test_metrics_is_not_taken_for_a_test_class() -> None:
    """Test modules import TestMetrics by name; pytest would try to collect it."""
    assert bus_contracts.TestMetrics.__test__ is False
