"""Load one symbol's OHLCV bars from ``{data_dir}/{SYMBOL}_{TIMEFRAME}.csv``.

The canonical layout is ``timestamp,open,high,low,close,volume`` (UTC, oldest
first). Common variants load too: header names in any case, a ``Date``,
``Datetime`` or ``time`` column, ISO 8601 with or without time, ``Z`` or an
offset, ``m/d/Y``, unix seconds (9–10 digits) or milliseconds (13 digits),
extra columns such as ``Adj Close`` (ignored) and a UTF-8 BOM. The whole file
is checked before the date filter; anything suspect is refused with
:class:`BadData` naming the file, the line and the problem.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bus_contracts import bounds
from training_engine.errors import BadData, BadStrategy, DataNotFound

PRICE_COLUMNS = ("open", "high", "low", "close")
VALUE_COLUMNS = (*PRICE_COLUMNS, "volume")
TIME_COLUMNS = ("timestamp", "datetime", "date", "time")

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class Bars:
    """One symbol's bars, oldest first; ``timestamps`` are ``datetime64[s]`` in UTC."""

    symbol: str
    timeframe: str
    path: Path
    timestamps: npt.NDArray[np.datetime64]
    open: Floats
    high: Floats
    low: Floats
    close: Floats
    volume: Floats
    lines: npt.NDArray[np.int64]
    """The file line of each bar (the header is line 1)."""
    fingerprint: str
    """sha256 of the parsed values of these bars (not of the file's bytes)."""

    def __len__(self) -> int:
        return len(self.close)


def data_path(data_dir: Path | str, symbol: str, timeframe: str) -> Path:
    """The file for a symbol and timeframe, refusing anything that leaves ``data_dir``."""
    if not re.fullmatch(bounds.SYMBOL_PATTERN, symbol) or not re.fullmatch(
        r"[0-9]+[mhdw]", timeframe
    ):
        raise BadStrategy(f"invalid symbol or timeframe: {symbol!r} {timeframe!r}", field="symbols")
    path = Path(data_dir) / f"{symbol}_{timeframe}.csv"
    if not path.resolve().is_relative_to(Path(data_dir).resolve()):
        raise BadStrategy(f"{symbol!r}: data file would lie outside the data directory")
    return path


def available_data(data_dir: Path | str) -> list[str]:
    """``"SYMBOL TIMEFRAME"`` for every data file in ``data_dir``, sorted."""
    found = []
    for file in sorted(Path(data_dir).glob("*_*.csv")):
        symbol, _, timeframe = file.stem.rpartition("_")
        found.append(f"{symbol} {timeframe}")
    return found


def load_ohlcv(
    data_dir: Path | str,
    symbol: str,
    timeframe: str,
    start: dt.date | None = None,
    end: dt.date | None = None,
    *,
    min_rows: int = 1,
    min_rows_reason: str = "",
) -> Bars:
    """Load, check and date-filter (``start``/``end`` inclusive) one data file."""
    path = data_path(data_dir, symbol, timeframe)
    if not path.is_file():
        raise DataNotFound(path, available_data(data_dir) if Path(data_dir).is_dir() else [])
    header, rows, lines = _read_rows(path)
    cols = _pick_columns(path, header)
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(header)
    texts = {name: list(columns[i]) for name, i in cols.items()}
    stamps = _parse_times(path, texts["timestamp"], lines, header[cols["timestamp"]].strip())
    values = {name: _parse_floats(path, texts[name], lines, name) for name in VALUE_COLUMNS}
    _check(path, stamps, values, texts, lines)
    lo = 0 if start is None else int(np.searchsorted(stamps, np.datetime64(start, "s")))
    stop_day = None if end is None else np.datetime64(end + dt.timedelta(days=1), "s")
    hi = len(stamps) if stop_day is None else int(np.searchsorted(stamps, stop_day))
    hi = max(lo, hi)
    if hi - lo < min_rows:
        span = f" between {start or 'the start'} and {end or 'the end'}" if start or end else ""
        why = f" ({min_rows_reason})" if min_rows_reason else ""
        raise BadData(path, f"only {hi - lo} rows{span}; at least {min_rows} are needed{why}")
    cut = {name: np.ascontiguousarray(v[lo:hi]) for name, v in values.items()}
    ts = np.ascontiguousarray(stamps[lo:hi])
    return Bars(
        symbol=symbol,
        timeframe=timeframe,
        path=path,
        timestamps=ts,
        lines=np.asarray(lines[lo:hi], dtype=np.int64),
        fingerprint=_fingerprint(ts, cut),
        **cut,
    )


def _read_rows(path: Path) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, non-blank rows and each row's line number (header = line 1)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise BadData(path, "the file is empty (no header line)")
            rows = list(reader)
            if reader.line_num != len(rows) + 1:  # a quoted field spans lines: count them
                handle.seek(0)
                reader = csv.reader(handle)
                next(reader)
                rows, lines = [], []
                for row in reader:
                    rows.append(row)
                    lines.append(reader.line_num)
            else:
                lines = list(range(2, len(rows) + 2))
    except UnicodeDecodeError as exc:
        raise BadData(path, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise BadData(path, f"malformed CSV: {exc}") from None
    if not all(map(len, rows)) or any(len(row) == 1 and not row[0].strip() for row in rows):
        kept = [i for i, row in enumerate(rows) if any(cell.strip() for cell in row)]
        rows, lines = [rows[i] for i in kept], [lines[i] for i in kept]
    width = len(header)
    for row, line in zip(rows, lines, strict=True):
        if len(row) != width:
            raise BadData(path, f"{len(row)} fields, but the header has {width}", row=line)
    return header, rows, lines


def _pick_columns(path: Path, header: list[str]) -> dict[str, int]:
    cols: dict[str, int] = {}
    for i, raw in enumerate(header):
        name = raw.strip().lower()
        if name in cols and name in (*TIME_COLUMNS, *VALUE_COLUMNS):
            raise BadData(path, f"column {raw.strip()!r} appears twice", row=1)
        cols.setdefault(name, i)
    time_col = next((name for name in TIME_COLUMNS if name in cols), "")
    missing = [name for name in VALUE_COLUMNS if name not in cols]
    if not time_col:
        missing.insert(0, "timestamp (or date, datetime, time)")
    if missing:
        found = ", ".join(h.strip() for h in header) or "none"
        raise BadData(path, f"missing column {', '.join(missing)}; found: {found}", row=1)
    return {"timestamp": cols[time_col], **{name: cols[name] for name in VALUE_COLUMNS}}


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_SECOND = dt.timedelta(seconds=1)


def _epoch_seconds(text: str) -> int:
    """One timestamp as unix seconds; ``ValueError`` with a reason when unreadable."""
    s = text.strip()
    if not s:
        raise ValueError("empty cell")
    if s.isdigit() and len(s) != 8:  # eight digits are an ISO basic date (19990104)
        if 9 <= len(s) <= 10:
            return int(s)
        if len(s) == 13 and int(s) % 1000 == 0:
            return int(s) // 1000
        raise ValueError(f"cannot read {text!r} as unix seconds (9-10 digits) or whole ms (13)")
    try:
        if "/" in s:
            day, _, clock = s.partition(" ")
            month, mday, year = day.split("/")
            if len(year) != 4:
                raise ValueError("year must have 4 digits")
            stamp = dt.datetime(int(year), int(month), int(mday))
            if clock:
                stamp = dt.datetime.combine(stamp.date(), dt.time.fromisoformat(clock.strip()))
        else:
            stamp = dt.datetime.fromisoformat(s)
    except ValueError as exc:
        hint = "month/day/year" if "/" in s else "ISO 8601"
        raise ValueError(f"cannot read {text!r} as a timestamp ({hint}: {exc})") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    if stamp.microsecond:
        raise ValueError(f"{text!r} has a fraction of a second (not supported)")
    return (stamp - _EPOCH) // _SECOND


def _parse_times(
    path: Path, texts: list[str], lines: list[int], column: str
) -> npt.NDArray[np.datetime64]:
    seconds = np.empty(len(texts), dtype=np.int64)
    for i, text in enumerate(texts):
        try:
            seconds[i] = _epoch_seconds(text)
        except ValueError as exc:
            raise BadData(path, str(exc), row=lines[i], column=column) from None
    return seconds.astype("datetime64[s]")


def _parse_floats(path: Path, texts: list[str], lines: list[int], column: str) -> Floats:
    try:
        return np.array(texts, dtype=np.float64)
    except ValueError:
        for i, text in enumerate(texts):
            try:
                float(text)
            except ValueError:
                problem = "empty cell" if not text.strip() else f"cannot read {text!r} as a number"
                raise BadData(path, problem, row=lines[i], column=column) from None
        raise


def _check(
    path: Path,
    stamps: npt.NDArray[np.datetime64],
    v: dict[str, Floats],
    texts: dict[str, list[str]],
    lines: list[int],
) -> None:
    """Refuse the earliest bad row; within a row, the first failing check wins."""
    checks: list[tuple[npt.NDArray[np.bool_], str | None, str]] = []
    for n in VALUE_COLUMNS:
        checks.append((~np.isfinite(v[n]), n, f"{{{n}!r}} is not a number"))
    for n in PRICE_COLUMNS:
        checks.append((v[n] <= 0, n, f"{n} {{{n}}} is not positive"))
    checks.append((v["volume"] < 0, "volume", "volume {volume} is negative"))
    for a, b in (("high", "low"), ("high", "open"), ("high", "close")):
        checks.append((v[a] < v[b], None, f"{a} {{{a}}} is below {b} {{{b}}}"))
    for b in ("open", "close"):
        checks.append((v["low"] > v[b], None, f"low {{low}} is above {b} {{{b}}}"))
    gaps = np.concatenate([[1], np.diff(stamps.astype(np.int64))])
    checks.append(
        (
            gaps < 0,
            None,
            "timestamp {timestamp} is earlier than row {prev_row}'s {prev_timestamp}"
            " (rows must be oldest first)",
        )
    )
    checks.append((gaps == 0, None, "duplicate timestamp {timestamp} (same as row {prev_row})"))
    firsts = [(int(np.argmax(m)), order) for order, (m, _, _) in enumerate(checks) if m.any()]
    if firsts:
        i, order = min(firsts)
        _, column, template = checks[order]
        prev = max(i - 1, 0)
        fields = {name: values[i].strip() for name, values in texts.items()}
        fields |= {"prev_row": str(lines[prev]), "prev_timestamp": texts["timestamp"][prev].strip()}
        raise BadData(path, template.format(**fields), row=lines[i], column=column)


def _fingerprint(stamps: npt.NDArray[np.datetime64], values: dict[str, Floats]) -> str:
    digest = hashlib.sha256(b"ohlcv-v1\n")
    digest.update(stamps.astype("<i8").tobytes())
    for name in VALUE_COLUMNS:
        digest.update(values[name].astype("<f8").tobytes())
    return digest.hexdigest()
