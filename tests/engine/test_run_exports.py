from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import training_engine

ROOT = Path(__file__).resolve().parents[2]


def test_all_lists_every_public_name_and_each_resolves() -> None:
    assert sorted(training_engine.__all__) == sorted(training_engine._EXPORTS)
    for name in training_engine.__all__:
        assert getattr(training_engine, name) is not None
    assert set(training_engine.__all__) <= set(dir(training_engine))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        training_engine.nope  # noqa: B018


def test_the_progress_protocol_imports_without_torch() -> None:
    code = (
        "import sys, training_engine.progress, training_engine.errors; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=60,
    )
    assert out.stdout.strip() == "False"
