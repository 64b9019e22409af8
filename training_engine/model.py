"""The MLP classifier: Linear → activation → Dropout per hidden layer, then a
Linear layer to the class logits."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from bus_contracts.strategy import ModelSpec

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
    "silu": nn.SiLU,
}


class MLP(nn.Sequential):
    """A plain feed-forward classifier; its ``state_dict`` keys are ``{i}.weight``."""

    def __init__(
        self,
        input_features: int,
        classes: int,
        hidden_layers: list[int],
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        if input_features < 1 or classes < 2:
            raise ValueError(
                f"an MLP needs at least 1 input and 2 classes, got {input_features} and {classes}"
            )
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}")
        layers: list[nn.Module] = []
        width = input_features
        for units in hidden_layers:
            layers.append(nn.Linear(width, units))
            layers.append(ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = units
        layers.append(nn.Linear(width, classes))
        super().__init__(*layers)
        self.input_features = input_features
        self.classes = classes
        self.hidden_layers = list(hidden_layers)
        self.activation = activation
        self.dropout = dropout

    def describe(self) -> str:
        """``mlp(30-64-32-3, relu, dropout=0.2)``."""
        widths = "-".join(str(w) for w in [self.input_features, *self.hidden_layers, self.classes])
        return f"mlp({widths}, {self.activation}, dropout={self.dropout:g})"


def build_model(spec: ModelSpec, input_features: int, classes: int) -> MLP:
    """The MLP a strategy asks for (weights drawn from torch's global RNG)."""
    return MLP(input_features, classes, list(spec.hidden_layers), spec.activation, spec.dropout)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def model_size_bytes(model: nn.Module) -> int:
    """Bytes of all parameters and buffers (the weights file is this plus a little)."""
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    return params + buffers
