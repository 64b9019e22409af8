"""Fuzzy membership features in [0, 1].

Shapes (vectorised; NaN in gives NaN out):

- triangular ``(a, b, c)``: 0 at ``a``, 1 at ``b``, 0 at ``c``.
- trapezoidal ``(a, b, c, d)``: rises from ``a`` to ``b``, 1 from ``b`` to
  ``c``, falls to 0 at ``d``. ``a == b`` is a left shoulder (1 for every
  value up to ``c``), ``c == d`` a right shoulder (1 for every value from
  ``b`` on), so a "high" set that ends at the top of an indicator's range
  still holds for a value beyond it.
- gaussian ``(mean, sigma)``: ``exp(-(x - mean)²/(2 sigma²))``.

Features are named ``{indicator}_{set}`` (the fuzzy set's indicator string
with ``.`` replaced by ``_``), in the order of ``strategy.fuzzy_sets`` and, in
each, the order of its sets.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from bus_contracts.strategy import (
    INDICATOR_OUTPUTS,
    FuzzySetSpec,
    Gaussian,
    MembershipFunction,
    Strategy,
    Trapezoidal,
    Triangular,
)
from training_engine.errors import BadStrategy

Floats = npt.NDArray[np.float64]


def trapezoidal(x: Floats, a: float, b: float, c: float, d: float) -> Floats:
    if not a <= b <= c <= d or a == d:
        raise BadStrategy(
            f"trapezoid needs a <= b <= c <= d and a < d, got {a:g}, {b:g}, {c:g}, {d:g}"
        )
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        rise = np.ones_like(x) if a == b else (x - a) / (b - a)
        fall = np.ones_like(x) if c == d else (d - x) / (d - c)
    out = np.clip(np.minimum(rise, fall), 0.0, 1.0)
    return np.where(np.isnan(x), np.nan, out)


def triangular(x: Floats, a: float, b: float, c: float) -> Floats:
    """The trapezoid ``(a, b, b, c)``: ``a == b`` or ``b == c`` make a shoulder."""
    if not a <= b <= c or a == c:
        raise BadStrategy(f"triangle needs a <= b <= c and a < c, got {a:g}, {b:g}, {c:g}")
    return trapezoidal(x, a, b, b, c)


def gaussian(x: Floats, mean: float, sigma: float) -> Floats:
    if not sigma > 0:
        raise BadStrategy(f"gaussian needs sigma > 0, got {sigma:g}")
    with np.errstate(all="ignore"):
        z = (np.asarray(x, dtype=np.float64) - mean) / sigma
        out: Floats = np.exp(-0.5 * z * z)
    return out


def membership(x: Floats, fn: MembershipFunction) -> Floats:
    match fn:
        case Triangular(a=a, b=b, c=c):
            return triangular(x, a, b, c)
        case Trapezoidal(a=a, b=b, c=c, d=d):
            return trapezoidal(x, a, b, c, d)
        case Gaussian(mean=mean, sigma=sigma):
            return gaussian(x, mean, sigma)
    raise BadStrategy(f"unknown membership function {fn!r}")


def resolve_output(strategy: Strategy, fuzzy: FuzzySetSpec) -> tuple[str, str]:
    """(indicator id, output name) a fuzzy set reads; a bare id means the first output."""
    ident, _, output = fuzzy.indicator.partition(".")
    types = {spec.id: spec.type for spec in strategy.indicators}
    if ident not in types:
        raise BadStrategy(
            f"fuzzy set {fuzzy.indicator!r} names no indicator (known: {', '.join(types)})",
            field="strategy.fuzzy_sets",
        )
    outputs = INDICATOR_OUTPUTS[types[ident]]
    if output and output not in outputs:
        raise BadStrategy(
            f"fuzzy set {fuzzy.indicator!r}: {types[ident]} has no output {output!r} "
            f"(it has {', '.join(outputs)})",
            field="strategy.fuzzy_sets",
        )
    return ident, output or outputs[0]


def fuzzify(
    strategy: Strategy, indicator_outputs: dict[str, dict[str, Floats]]
) -> tuple[Floats, list[str]]:
    """Membership features ``[n, f]`` and their names, in the recorded order."""
    columns: list[Floats] = []
    names: list[str] = []
    for fuzzy in strategy.fuzzy_sets:
        ident, output = resolve_output(strategy, fuzzy)
        x = indicator_outputs[ident][output]
        prefix = fuzzy.indicator.replace(".", "_")
        for set_name, fn in fuzzy.sets.items():
            try:
                columns.append(membership(x, fn))
            except BadStrategy as exc:
                raise BadStrategy(
                    f"{prefix}_{set_name}: {exc.message}", field="strategy.fuzzy_sets"
                ) from None
            names.append(f"{prefix}_{set_name}")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise BadStrategy(
            f"feature names repeat: {', '.join(duplicates)}", field="strategy.fuzzy_sets"
        )
    features: Floats = np.column_stack(columns).astype(np.float64, copy=False)
    return features, names
