"""Loading OHLCV files: the shipped data, the accepted variants, and every refusal."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from training_engine.data import Bars, load_ohlcv
from training_engine.errors import BadData, BadStrategy, DataNotFound

DATA = Path(__file__).resolve().parents[2] / "data"
HEADER = "timestamp,open,high,low,close,volume"
GOOD = [
    "2020-01-01T00:00:00Z,10,11,9,10.5,100",
    "2020-01-02T00:00:00Z,10.5,12,10,11,200",
    "2020-01-03T00:00:00Z,11,11.5,10.5,11.2,150",
    "2020-01-04T00:00:00Z,11.2,11.8,10.9,11.0,0",
]


def write(tmp_path: Path, lines: list[str], name: str = "TEST_1d.csv", **kw: str) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding=kw.get("encoding", "utf-8"))
    return path


def load(tmp_path: Path, **kw: object) -> Bars:
    return load_ohlcv(tmp_path, "TEST", "1d", **kw)  # type: ignore[arg-type]


# ---- the shipped files ------------------------------------------------------


@pytest.mark.parametrize(("symbol", "rows"), [("SPX", 5031), ("IXIC", 5031), ("MSFT", 7983)])
def test_shipped_data_loads(symbol: str, rows: int) -> None:
    bars = load_ohlcv(DATA, symbol, "1d")
    assert len(bars) == rows
    assert bars.timestamps.dtype == np.dtype("datetime64[s]")
    assert (np.diff(bars.timestamps.astype(np.int64)) > 0).all()
    assert (bars.high >= np.maximum(bars.open, bars.close)).all()
    assert (bars.low <= np.minimum(bars.open, bars.close)).all()
    assert bars.lines[0] == 2
    assert bars.lines[-1] == rows + 1
    assert len(bars.fingerprint) == 64


def test_spx_first_and_last_bar() -> None:
    bars = load_ohlcv(DATA, "SPX", "1d")
    assert bars.timestamps[0] == np.datetime64("1999-01-04T00:00:00")
    assert bars.close[0] == 1228.099976
    assert bars.timestamps[-1] == np.datetime64("2018-12-31T00:00:00")
    assert bars.volume[-1] == 3442870000


def test_date_filter_is_inclusive_and_changes_the_fingerprint() -> None:
    full = load_ohlcv(DATA, "SPX", "1d")
    cut = load_ohlcv(DATA, "SPX", "1d", dt.date(2010, 1, 4), dt.date(2010, 12, 31))
    assert cut.timestamps[0] == np.datetime64("2010-01-04")
    assert cut.timestamps[-1] == np.datetime64("2010-12-31")
    assert len(cut) == 252
    assert cut.fingerprint != full.fingerprint
    assert load_ohlcv(DATA, "SPX", "1d").fingerprint == full.fingerprint
    first = int(np.searchsorted(full.timestamps, cut.timestamps[0]))
    assert cut.lines[0] == full.lines[first]


# ---- variants ---------------------------------------------------------------


def test_canonical_file(tmp_path: Path) -> None:
    write(tmp_path, [HEADER, *GOOD])
    bars = load(tmp_path)
    assert bars.close.tolist() == [10.5, 11, 11.2, 11.0]
    assert bars.volume.tolist() == [100, 200, 150, 0]
    assert bars.path == tmp_path / "TEST_1d.csv"


@pytest.mark.parametrize(
    "stamps",
    [
        ["2020-01-01", "2020-01-02", "2020-01-03", "2020-01-04"],
        ["1/1/2020", "1/2/2020", "01/03/2020", "1/4/2020"],
        [
            "2020-01-01 00:00:00",
            "2020-01-02T00:00",
            "2020-01-03T00:00:00+00:00",
            "2020-01-04T02:00:00+02:00",
        ],
        ["1577836800", "1577923200", "1578009600", "1578096000"],
        ["1577836800000", "1577923200000", "1578009600000", "1578096000000"],
        ["20200101", "20200102", "20200103", "20200104"],
    ],
)
def test_timestamp_formats_agree(tmp_path: Path, stamps: list[str]) -> None:
    rows = [f"{s},{line.split(',', 1)[1]}" for s, line in zip(stamps, GOOD, strict=True)]
    write(tmp_path, [HEADER, *rows])
    expected = np.arange("2020-01-01", "2020-01-05", dtype="datetime64[D]").astype("datetime64[s]")
    np.testing.assert_array_equal(load(tmp_path).timestamps, expected)


def test_yahoo_style_file_with_bom_capitals_and_adj_close(tmp_path: Path) -> None:
    lines = ["Date,Open,High,Low,Close,Adj Close,Volume"]
    for row in GOOD:
        stamp, o, h, lo, c, v = row.split(",")
        y, m, d = stamp[:10].split("-")
        lines.append(f"{int(m)}/{int(d)}/{y},{o},{h},{lo},{c},{float(c) * 0.9},{v}")
    write(tmp_path, lines, encoding="utf-8-sig")
    bars = load(tmp_path)
    canonical = write(tmp_path, [HEADER, *GOOD], name="REF_1d.csv")
    ref = load_ohlcv(canonical.parent, "REF", "1d")
    assert bars.close.tolist() == ref.close.tolist()  # not the adjusted close
    assert bars.fingerprint == ref.fingerprint  # same values, same fingerprint


@pytest.mark.parametrize("name", ["Datetime", "time", " TIMESTAMP "])
def test_time_column_names(tmp_path: Path, name: str) -> None:
    write(tmp_path, [HEADER.replace("timestamp", name), *GOOD])
    assert len(load(tmp_path)) == 4


def test_blank_lines_and_crlf_are_tolerated(tmp_path: Path) -> None:
    (tmp_path / "TEST_1d.csv").write_bytes(
        ("\r\n".join([HEADER, GOOD[0], "", *GOOD[1:]]) + "\r\n\r\n").encode()
    )
    bars = load(tmp_path)
    assert len(bars) == 4
    assert bars.lines.tolist() == [2, 4, 5, 6]


# ---- refusals ---------------------------------------------------------------


def refused(tmp_path: Path, lines: list[str], **kw: object) -> BadData:
    path = write(tmp_path, lines)
    with pytest.raises(BadData) as info:
        load(tmp_path, **kw)
    err = info.value
    assert err.code == 422
    assert err.path == path
    assert str(path) in err.message
    return err


def bad(row: int, column: int, value: str) -> list[str]:
    """The good file with one cell replaced (row is the file line, header = 1)."""
    lines = [HEADER, *GOOD]
    cells = lines[row - 1].split(",")
    cells[column] = value
    lines[row - 1] = ",".join(cells)
    return lines


@pytest.mark.parametrize(
    ("lines", "row", "column", "problem"),
    [
        (bad(3, 4, "abc"), 3, "close", "cannot read 'abc' as a number"),
        (bad(4, 2, ""), 4, "high", "empty cell"),
        (bad(2, 5, "NaN"), 2, "volume", "'NaN' is not a number"),
        (bad(5, 1, "inf"), 5, "open", "'inf' is not a number"),
        (bad(3, 4, "-11"), 3, "close", "close -11 is not positive"),
        (bad(3, 3, "0"), 3, "low", "low 0 is not positive"),
        (bad(4, 5, "-5"), 4, "volume", "volume -5 is negative"),
        (bad(2, 0, "yesterday"), 2, "timestamp", "cannot read 'yesterday' as a timestamp"),
        (bad(2, 0, "13/01/2020"), 2, "timestamp", "month/day/year"),
        (bad(3, 0, ""), 3, "timestamp", "empty cell"),
        (bad(3, 0, "12345"), 3, "timestamp", "cannot read '12345' as unix seconds"),
        (bad(3, 0, "2020-01-02T00:00:00.5"), 3, "timestamp", "fraction of a second"),
    ],
)
def test_bad_cells(tmp_path: Path, lines: list[str], row: int, column: str, problem: str) -> None:
    err = refused(tmp_path, lines)
    assert (err.row, err.column) == (row, column)
    assert problem in err.message
    assert f"row {row}, column {column}: " in err.message


@pytest.mark.parametrize(
    ("lines", "row", "problem"),
    [
        (bad(3, 2, "9.5"), 3, "high 9.5 is below low 10"),
        (bad(2, 1, "11.5"), 2, "high 11 is below open 11.5"),
        (bad(4, 4, "11.6"), 4, "high 11.5 is below close 11.6"),
        (bad(5, 1, "10.8"), 5, "low 10.9 is above open 10.8"),
        (bad(2, 4, "8.5"), 2, "low 9 is above close 8.5"),
        (
            bad(4, 0, "2019-12-31"),
            4,
            "timestamp 2019-12-31 is earlier than row 3's 2020-01-02T00:00:00Z",
        ),
        (
            bad(4, 0, "2020-01-02T00:00:00Z"),
            4,
            "duplicate timestamp 2020-01-02T00:00:00Z (same as row 3)",
        ),
    ],
)
def test_bad_rows(tmp_path: Path, lines: list[str], row: int, problem: str) -> None:
    err = refused(tmp_path, lines)
    assert err.row == row
    assert f"TEST_1d.csv row {row}: {problem}" in err.message


def test_the_earliest_bad_row_is_named(tmp_path: Path) -> None:
    lines = bad(5, 5, "-1")  # negative volume on line 5
    lines[2] = lines[2].replace(",12,", ",9,")  # high below low on line 3
    err = refused(tmp_path, lines)
    assert err.row == 3
    assert "high 9 is below low 10" in err.message


def test_missing_column_lists_what_was_found(tmp_path: Path) -> None:
    err = refused(tmp_path, ["Date,Open,High,Low,Adj Close,Volume", "2020-01-01,1,1,1,1,1"])
    assert err.row == 1
    assert "missing column close; found: Date, Open, High, Low, Adj Close, Volume" in err.message


def test_missing_time_column(tmp_path: Path) -> None:
    err = refused(tmp_path, ["day,open,high,low,close,volume", "2020-01-01,1,1,1,1,1"])
    assert "missing column timestamp (or date, datetime, time)" in err.message


def test_repeated_column(tmp_path: Path) -> None:
    err = refused(
        tmp_path, ["timestamp,open,high,low,close,Close,volume", "2020-01-01,1,1,1,1,1,1"]
    )
    assert "column 'Close' appears twice" in err.message


def test_short_row(tmp_path: Path) -> None:
    err = refused(tmp_path, [HEADER, GOOD[0], "2020-01-02T00:00:00Z,1,2,0.5"])
    assert err.row == 3
    assert "row 3: 4 fields, but the header has 6" in err.message


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "TEST_1d.csv").write_text("")
    with pytest.raises(BadData, match=r"TEST_1d\.csv: the file is empty"):
        load(tmp_path)


def test_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "TEST_1d.csv").write_bytes(HEADER.encode() + b"\n\xff\xfe,1,1,1,1,1\n")
    with pytest.raises(BadData, match=r"TEST_1d\.csv: not UTF-8 text"):
        load(tmp_path)


def test_too_few_rows_after_the_date_filter(tmp_path: Path) -> None:
    err = refused(
        tmp_path,
        [HEADER, *GOOD],
        start=dt.date(2020, 1, 2),
        end=dt.date(2020, 1, 3),
        min_rows=3,
        min_rows_reason="3 for the test",
    )
    assert (
        "only 2 rows between 2020-01-02 and 2020-01-03; at least 3 are needed (3 for the test)"
        in err.message
    )


def test_header_only_file_has_too_few_rows(tmp_path: Path) -> None:
    err = refused(tmp_path, [HEADER])
    assert "only 0 rows; at least 1 are needed" in err.message


def test_missing_file_lists_what_exists(tmp_path: Path) -> None:
    write(tmp_path, [HEADER, *GOOD], name="AAA_1d.csv")
    write(tmp_path, [HEADER, *GOOD], name="BRK.B_1h.csv")
    with pytest.raises(DataNotFound) as info:
        load_ohlcv(tmp_path, "ZZZ", "1d")
    assert info.value.code == 404
    assert (
        info.value.message
        == f"{tmp_path / 'ZZZ_1d.csv'}: no such data file; available: AAA 1d, BRK.B 1h"
    )


def test_missing_data_dir(tmp_path: Path) -> None:
    with pytest.raises(DataNotFound, match="available: none"):
        load_ohlcv(tmp_path / "nope", "SPX", "1d")


@pytest.mark.parametrize("symbol", ["../SPX", "/etc/passwd", "A/B", "spx", ""])
def test_symbols_that_are_not_symbols_are_refused(tmp_path: Path, symbol: str) -> None:
    with pytest.raises(BadStrategy, match="invalid symbol"):
        load_ohlcv(tmp_path, symbol, "1d")


def test_a_link_out_of_the_data_dir_is_refused(tmp_path: Path) -> None:
    outside = write(tmp_path, [HEADER, *GOOD], name="SECRET_1d.csv")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "X_1d.csv").symlink_to(outside)
    with pytest.raises(BadStrategy, match="outside the data directory"):
        load_ohlcv(data_dir, "X", "1d")


def test_a_quoted_field_over_two_lines_keeps_line_numbers_right(tmp_path: Path) -> None:
    header = "\ufeff" + HEADER + ",note"
    lines = [
        header,
        GOOD[0] + ',"two\nlines"',
        GOOD[1] + ",x",
        GOOD[2].replace(",11.5,", ",10,") + ",y",
    ]
    (tmp_path / "TEST_1d.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(BadData) as info:
        load(tmp_path)
    assert info.value.row == 5  # the header, a two-line row, then lines 4 and 5
    lines[3] = GOOD[2] + ",y"
    (tmp_path / "TEST_1d.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert load(tmp_path).lines.tolist() == [3, 4, 5]


@pytest.mark.parametrize(
    ("stamp", "problem"),
    [
        ("1/2/20", "year must have 4 digits"),
        ("1577923200123", "whole ms"),
        ("2/30/2020", "month/day/year"),
        ("2020-13-01", "ISO 8601"),
    ],
)
def test_more_unreadable_timestamps(tmp_path: Path, stamp: str, problem: str) -> None:
    err = refused(tmp_path, bad(3, 0, stamp))
    assert (err.row, err.column) == (3, "timestamp")
    assert problem in err.message
