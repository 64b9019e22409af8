"""Cross-field checks on a training request, beyond what one field's type says.

msgspec checks each value against its own bounds while decoding; the rules here
relate values to each other (a fuzzy set must name a declared indicator, the
split must sum to one). Every failure is a :class:`ContractError` naming the
field, so the caller can fix the request without reading host logs.
"""

from __future__ import annotations

from itertools import pairwise

from bus_contracts import bounds
from bus_contracts.errors import ContractError
from bus_contracts.messages.start import StartTraining
from bus_contracts.strategy import (
    INDICATOR_OUTPUTS,
    INDICATOR_PARAMS,
    INTEGER_PARAMS,
    Gaussian,
    IndicatorSpec,
    MembershipFunction,
    SplitSpec,
    Strategy,
    Triangular,
    default_fuzzy_sets,
)

SPLIT_TOLERANCE = 1e-6


def validate_start(req: StartTraining) -> StartTraining:
    """Return ``req`` unchanged when its fields agree with each other."""
    _check_symbols(req.symbols)
    if req.start_date is not None and req.end_date is not None and req.start_date > req.end_date:
        raise ContractError("start_date", f"must not be after end_date ({req.end_date})")
    _check_strategy(req.strategy)
    _check_model_size(req.strategy)
    return req


def model_parameters(strategy: Strategy) -> int:
    """Weights and biases of the strategy's MLP: one input per fuzzy set, three classes."""
    widths = [sum(len(fuzzy.sets) for fuzzy in strategy.fuzzy_sets)]
    widths += strategy.model.hidden_layers
    widths.append(3)
    return sum((inputs + 1) * outputs for inputs, outputs in pairwise(widths))


def _check_model_size(strategy: Strategy) -> None:
    parameters = model_parameters(strategy)
    if parameters > bounds.MAX_MODEL_PARAMETERS:
        raise ContractError(
            "strategy.model.hidden_layers",
            f"the model would have {parameters:,} parameters; at most "
            f"{bounds.MAX_MODEL_PARAMETERS:,}",
        )


def resolved_params(spec: IndicatorSpec) -> dict[str, float | int]:
    """Every parameter of ``spec``'s indicator, defaults filled in; periods as ints.

    Meant for a request that passed :func:`validate_start` (periods are whole)."""
    params: dict[str, float | int] = {}
    for name, (default, _, _) in INDICATOR_PARAMS[spec.type].items():
        value = spec.params.get(name, default)
        params[name] = int(value) if name in INTEGER_PARAMS else float(value)
    return params


def _check_symbols(symbols: list[str]) -> None:
    seen: set[str] = set()
    for i, symbol in enumerate(symbols):
        if symbol in seen:
            raise ContractError(f"symbols[{i}]", f"duplicate symbol {symbol!r}")
        seen.add(symbol)


def _check_strategy(strategy: Strategy) -> None:
    types_by_id: dict[str, str] = {}
    for i, spec in enumerate(strategy.indicators):
        where = f"strategy.indicators[{i}]"
        if spec.id in types_by_id:
            raise ContractError(f"{where}.id", f"duplicate indicator id {spec.id!r}")
        types_by_id[spec.id] = spec.type
        check_params(spec, where)
    _check_fuzzy_sets(strategy, types_by_id)
    _check_split(strategy.training.split)


def check_params(spec: IndicatorSpec, where: str) -> None:
    """Parameter names and bounds of one indicator; ``where`` prefixes the field."""
    allowed = INDICATOR_PARAMS[spec.type]
    for name, value in spec.params.items():
        field = f"{where}.params.{name}"
        if name not in allowed:
            raise ContractError(
                field, f"unknown parameter for {spec.type}; allowed: {', '.join(allowed)}"
            )
        _, lowest, highest = allowed[name]
        if not lowest <= value <= highest:
            raise ContractError(field, f"must be between {lowest:g} and {highest:g}")
        if name in INTEGER_PARAMS and not float(value).is_integer():
            raise ContractError(field, "must be a whole number")
    if spec.type == "macd":
        params = resolved_params(spec)
        if params["fast"] >= params["slow"]:
            raise ContractError(
                f"{where}.params.fast", f"must be less than slow ({params['slow']})"
            )


def _check_fuzzy_sets(strategy: Strategy, types_by_id: dict[str, str]) -> None:
    defined_at: dict[tuple[str, str], int] = {}
    for j, fuzzy in enumerate(strategy.fuzzy_sets):
        where = f"strategy.fuzzy_sets[{j}]"
        indicator_id, _, output = fuzzy.indicator.partition(".")
        if indicator_id not in types_by_id:
            raise ContractError(
                f"{where}.indicator",
                f"unknown indicator {indicator_id!r}; declared: {', '.join(types_by_id)}"
                + _default_sets_hint(strategy),
            )
        outputs = INDICATOR_OUTPUTS[types_by_id[indicator_id]]
        if output and output not in outputs:
            raise ContractError(
                f"{where}.indicator",
                f"{types_by_id[indicator_id]} has no output {output!r}; "
                f"outputs: {', '.join(outputs)}",
            )
        key = (indicator_id, output or outputs[0])
        if key in defined_at:
            raise ContractError(
                f"{where}.indicator",
                f"{indicator_id}.{key[1]} already has fuzzy sets at "
                f"strategy.fuzzy_sets[{defined_at[key]}]",
            )
        defined_at[key] = j
        for name, function in fuzzy.sets.items():
            _check_membership(function, f"{where}.sets.{name}")


def _default_sets_hint(strategy: Strategy) -> str:
    """The common slip: custom indicators, with fuzzy_sets left at the defaults
    (which refer to the default indicators)."""
    if strategy.fuzzy_sets == default_fuzzy_sets():
        return "; the default fuzzy_sets refer to the default indicators, so give fuzzy_sets too"
    return ""


def _check_membership(function: MembershipFunction, field: str) -> None:
    if isinstance(function, Gaussian):
        return  # its type already requires sigma > 0
    if isinstance(function, Triangular):
        rule = "triangular needs a <= b <= c and a < c"
        points: tuple[float, ...] = (function.a, function.b, function.c)
    else:
        rule = "trapezoidal needs a <= b <= c <= d and a < d"
        points = (function.a, function.b, function.c, function.d)
    if not (all(x <= y for x, y in pairwise(points)) and points[0] < points[-1]):
        got = ", ".join(f"{p:g}" for p in points)
        raise ContractError(field, f"{rule}; got {got}")


def _check_split(split: SplitSpec) -> None:
    total = split.train + split.validation + split.test
    if abs(total - 1.0) > SPLIT_TOLERANCE:
        raise ContractError(
            "strategy.training.split", f"train + validation + test must sum to 1, not {total:g}"
        )
