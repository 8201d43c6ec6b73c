"""What every target model shares: its layer sizes decide its inputs and classes."""
from __future__ import annotations


class SizedModel:
    """Mixin for models with ``self.spec.sizes = (inputs, hidden..., classes)``."""

    @property
    def num_classes(self) -> int:
        return self.spec.sizes[-1]

    @property
    def num_inputs(self) -> int:
        return self.spec.sizes[0]
