"""The ANN target of the MI-FACE baseline: input -> hidden sigmoid layers -> linear class logits."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from ..errors import InputError
from .base import SizedModel


@dataclass(frozen=True)
class ANNSpec:
    sizes: tuple[int, ...]  # (inputs, hidden..., classes)

    def __post_init__(self):
        if len(self.sizes) < 2 or any((not isinstance(s, int)) or s <= 0 for s in self.sizes):
            raise InputError(f"sizes must be >= 2 positive integers, got {self.sizes!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ANNSpec":
        return cls(sizes=tuple(int(s) for s in d["sizes"]))


class SigmoidMLP(SizedModel, torch.nn.Module):
    def __init__(self, spec: ANNSpec):
        super().__init__()
        self.spec = spec
        self.layers = torch.nn.ModuleList(
            torch.nn.Linear(a, b) for a, b in zip(spec.sizes[:-1], spec.sizes[1:])
        )

    def check_input(self, x: torch.Tensor, name: str = "images") -> None:
        if x.ndim != 2 or x.shape[1] != self.num_inputs:
            raise InputError(f"{name} must have shape (batch, {self.num_inputs}), got {tuple(x.shape)}")

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.sigmoid(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x)

    def posterior(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(x), dim=1)
