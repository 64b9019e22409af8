"""``backend_adapter.__all__`` is the adapter's whole public API."""

from __future__ import annotations

import ast
import importlib
import inspect

import backend_adapter

# The adapter's own modules (trainctl, the demo and the console are its users).
MODULES = ("breaker", "following", "local", "metrics", "models", "router", "settings")


def _public_names(module_name: str) -> set[str]:
    module = importlib.import_module(f"backend_adapter.{module_name}")
    names: set[str] = set()
    for node in ast.parse(inspect.getsource(module)).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {name for name in names if not name.startswith("_") and name != "log"}


def test_all_lists_every_public_name() -> None:
    exported = set(backend_adapter.__all__)
    for module_name in MODULES:
        missing = _public_names(module_name) - exported
        assert not missing, f"backend_adapter.{module_name} defines {sorted(missing)}"


def test_every_name_in_all_resolves_once() -> None:
    assert len(backend_adapter.__all__) == len(set(backend_adapter.__all__))
    namespace: dict[str, object] = {}
    exec("from backend_adapter import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(backend_adapter.__all__)


def test_importing_the_adapter_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, backend_adapter; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
