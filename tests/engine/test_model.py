from __future__ import annotations

import pytest
import torch
from torch import nn

from bus_contracts.strategy import ModelSpec
from training_engine.model import MLP, build_model, model_size_bytes, parameter_count


def test_default_model_layers_and_parameter_count() -> None:
    model = build_model(ModelSpec(), input_features=30, classes=3)
    kinds = [type(m) for m in model]
    assert kinds == [nn.Linear, nn.ReLU, nn.Dropout, nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]
    # (30*64 + 64) + (64*32 + 32) + (32*3 + 3)
    assert parameter_count(model) == 1984 + 2080 + 99
    assert model_size_bytes(model) == 4 * parameter_count(model)
    assert model.describe() == "mlp(30-64-32-3, relu, dropout=0.2)"


def test_forward_shape_and_activation_choice() -> None:
    model = MLP(5, 4, [8, 8, 8], activation="gelu", dropout=0.0)
    assert not any(isinstance(m, nn.Dropout) for m in model)
    assert sum(isinstance(m, nn.GELU) for m in model) == 3
    assert model(torch.zeros(7, 5)).shape == (7, 4)


@pytest.mark.parametrize("activation", ["relu", "gelu", "tanh", "leaky_relu", "silu"])
def test_every_activation_builds(activation: str) -> None:
    spec = ModelSpec(hidden_layers=[4], activation=activation, dropout=0.5)  # type: ignore[arg-type]
    assert build_model(spec, 3, 2)(torch.ones(2, 3)).shape == (2, 2)


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="2 classes"):
        MLP(3, 1, [4])
    with pytest.raises(ValueError, match="activation"):
        MLP(3, 2, [4], activation="swish")
