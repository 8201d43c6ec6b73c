"""A faster fixed_pt model of Lava's ``Dense`` synapse for replays: the same integers, summed row-wise.

Lava's bit-accurate ``Dense`` model accumulates a binary input as ``weights[:, spikes].sum(axis=1)``: a
gather of columns from the row-major (out, in) weight matrix, which copies a strided block every step
(1.7 ms per step for the shipped 784-3000 layer, measured; the largest single cost of a replay step). The
model here lets Lava's own ``run_spk`` handle the first step (it clips and truncates the weights there, once),
then keeps a transposed, contiguous copy of those prepared weights and sums the rows of the spiking inputs
(0.3 ms). Integer sums do not depend on the order of the terms, so ``a_out`` carries the same values at every
step (tested: every layer and the output voltages equal those of Lava's model). Graded inputs
(``num_message_bits > 0``) are left to Lava's model throughout.

Imported only after ``replay._lava()`` has imported Lava.
"""
from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.dense.models import PyDenseModelBitAcc
from lava.proc.dense.process import Dense


@implements(proc=Dense, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyDenseRowSumModel(PyDenseModelBitAcc):
    """Lava's fixed_pt ``Dense`` model with the binary-input accumulation done on transposed weights."""

    _rows: np.ndarray | None = None  # (in, out) copy of the prepared weights, from the second step on

    def run_spk(self) -> None:
        if self._rows is None or self.num_message_bits.item() > 0:
            super().run_spk()
            if self.weights_set and self.num_message_bits.item() == 0:
                self._rows = np.ascontiguousarray(np.asarray(self.weights).T)
            return
        self.weight_exp = self.proc_params.get("weight_exp", 0)  # read every step, as Lava's model does
        self.a_out.send(self.a_buff)
        spikes = self.s_in.recv().astype(bool)
        total = self._rows[spikes].sum(axis=0)
        exp = self.weight_exp
        self.a_buff = np.left_shift(total, exp) if exp > 0 else np.right_shift(total, -exp)


MODELS = {Dense: PyDenseRowSumModel}
