"""Lava fixed_pt models of the delayed synapses for streamed replays: the delay buffer is cleared per window.

NetX's ``reset_interval`` zeroes the neurons' ``u`` and ``v`` at layer p's step p of every window, but not
the delay buffer ``a_buff`` (out, max_delay + 1) of a ``DelayDense`` / ``DelaySparse`` synapse: spikes the
previous sample sent through a delay of d steps still arrive up to d steps after the reset, enter ``u``
and change the new sample at every later step (measured: every layer of every later sample of a stream
differs from a run per sample). These models, which differ from Lava's only in that, clear the part of the
buffer that is due after the step at which the synapse's input layer is reset, so a streamed run equals one
run per sample from layer p's step p on.

Timing (Lava's ``time_step`` counts from 1; ``o`` is the replay's offset, 1, or 0 with an input layer): the
synapse of computing layer p first receives the current sample's spikes at ``time_step == k*T + p + o``
(from the source for p = 0 with o = 1, else from layer p-1 at its reset step). At the start of that step,
before the buffer's column 0 is sent, columns 1: (activity of earlier steps due after it) are zeroed;
column 0 is still delivered: for p = 0 it is the input to the previous sample's last step, for p > 0 it
reaches layer p at its step p-1, which the reset at step p discards.

Imported only after ``replay._lava()`` has imported Lava.
"""
from __future__ import annotations

from lava.proc.dense.models import PyDelayDenseModelBitAcc
from lava.proc.dense.process import DelayDense
from lava.proc.sparse.models import PyDelaySparseModelBitAcc
from lava.proc.sparse.process import DelaySparse

WINDOW = "brainleaks_window"  # proc_params keys set on each delayed synapse process
OFFSET = "brainleaks_clear_offset"


class _ClearEachWindow:
    """Zero ``a_buff[:, 1:]`` at the start of ``time_step == k * window + offset`` for k >= 1."""

    def run_spk(self):
        window = self.proc_params.get(WINDOW)
        if window and self.time_step > window and self.time_step % window == self.proc_params[OFFSET] % window:
            self.a_buff[:, 1:] = 0
        super().run_spk()


class PyDelayDenseStreamModel(_ClearEachWindow, PyDelayDenseModelBitAcc):
    """Lava's fixed_pt ``DelayDense`` model with the delay buffer cleared per window."""


class PyDelaySparseStreamModel(_ClearEachWindow, PyDelaySparseModelBitAcc):
    """Lava's fixed_pt ``DelaySparse`` model with the delay buffer cleared per window."""


MODELS = {DelayDense: PyDelayDenseStreamModel, DelaySparse: PyDelaySparseStreamModel}


def clear_each_window(synapse, window: int, offset: int) -> bool:
    """Mark a delayed synapse process to be cleared at ``time_step % window == offset`` of every window after
    the first; False (nothing set) if ``synapse`` is not a delayed synapse."""
    if type(synapse) not in MODELS:
        return False
    synapse.proc_params.overwrite(WINDOW, int(window))
    synapse.proc_params.overwrite(OFFSET, int(offset))
    return True
