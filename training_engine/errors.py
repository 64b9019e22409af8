"""The engine's errors: one base class with an HTTP-like ``code``.

The job runtime maps an :class:`EngineError` to the job's error (code and
message) as is, so every message is written for the person who sent the
request: it names the file, row and problem, never a traceback.
"""

from __future__ import annotations

from pathlib import Path


class EngineError(Exception):
    """Base of every error the engine raises on purpose."""

    code: int = 500

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class DataNotFound(EngineError):
    """No data file for a symbol and timeframe."""

    code = 404

    def __init__(self, path: Path | str, available: list[str] | None = None) -> None:
        self.path = Path(path)
        self.available = list(available or [])
        shown = ", ".join(self.available) if self.available else "none"
        super().__init__(f"{path}: no such data file; available: {shown}", field="symbols")


class BadData(EngineError):
    """A data file that cannot be trusted, with the line it went wrong on.

    ``row`` is the 1-based line number in the file (the header is line 1).
    """

    code = 422

    def __init__(
        self,
        path: Path | str,
        problem: str,
        *,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.problem = problem
        self.row = row
        self.column = column
        where = str(path)
        if row is not None:
            where += f" row {row}"
        if column is not None:
            where += f", column {column}" if row is not None else f" column {column}"
        super().__init__(f"{where}: {problem}")


class BadStrategy(EngineError):
    """A request or strategy the engine cannot run (caught before any work)."""

    code = 400


class TrainingCancelled(EngineError):
    """The job was asked to stop."""

    code = 409

    def __init__(self, message: str = "training was cancelled") -> None:
        super().__init__(message)


class DeviceUnavailable(EngineError):
    """The requested device is not present or not usable."""

    code = 400


class TrainingFailed(EngineError):
    """Training broke in a way the request did not cause."""

    code = 500
