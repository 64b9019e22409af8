"""Checks worth making before a job is accepted: a job that cannot start is
refused at once, with the reason, instead of failing after it was queued."""

from __future__ import annotations

from pathlib import Path

from bus_contracts.errors import BadRequest, NotFound
from bus_contracts.messages.start import StartTraining
from training_engine.data import available_data, data_path
from training_engine.errors import EngineError


def require_data(request: StartTraining, data_dir: Path) -> None:
    """Every symbol's data file exists in ``data_dir``; else 404 naming what does.

    The message names symbols and timeframes, never this host's paths.
    """
    missing = []
    for symbol in request.symbols:
        try:
            path = data_path(data_dir, symbol, request.timeframe)
        except EngineError as exc:
            raise BadRequest(exc.message, field="symbols") from None
        if not path.is_file():
            missing.append(symbol)
    if missing:
        available = ", ".join(available_data(data_dir)) or "none"
        raise NotFound(
            f"no {request.timeframe} data for {', '.join(missing)}; available: {available}",
            field="symbols",
        )
