"""Lava recorders that write every step into host shared memory, read back by the host as one array.

Lava 0.10 returns a Var to the host one element per message (``PyLoihiProcessModel._get_var``), so reading
a ring-buffer sink or a monitor of a 3000-neuron layer over 500 steps took tens of seconds. The recorders
here keep nothing in Lava Vars: the host creates a named ``multiprocessing.shared_memory`` block per
recording (``SharedBuffers.new``), each recorder's fixed_pt process model (built in its own forked worker)
attaches to the block by name and writes the step's vector into row ``time_step - 1``, and after the run the
host copies the whole (steps, *shape) array out in one go. ``SharedBuffers`` unlinks every block it created
when its ``with`` block ends, also on errors, so no segment is left in /dev/shm.

- ``SpikeRecorder``: an InPort that receives an OutPort's vector in the spike phase (what
  ``lava.proc.io.sink.RingBuffer`` stores, int32).
- ``VarRecorder``: a RefPort that reads a Var in the post-management phase of every step (what
  ``lava.proc.monitor.process.Monitor`` stores, here as int64).
- ``record_in_neuron``: the cheaper way for Lava's LIFReset neurons (what NetX builds for CUBA layers). The neuron's
  own fixed_pt model, extended by ``_RecordingNeuron``, writes the spikes it sends (int32) and its ``v`` and
  ``u`` after the step (int64) into the blocks: no recorder process, no RefPort, and no post-management phase
  (a ``VarRecorder`` makes the runtime run that phase in every process at every step). The values are those
  the recorders above receive: a ``VarRecorder`` reads ``v`` and ``u`` after the spiking phase, where the
  neuron's ``run_spk`` left them, and a ``SpikeRecorder`` receives what ``run_spk`` sends (tested, equal on
  every layer). Run with ``NEURON_MODELS`` in the run config's ``exception_proc_model_map``.

This is a package with everything in ``__init__``: for a Process without an explicit model map Lava's
compiler searches for process models in the Process's module and then executes every other module of
the same directory; alone in its directory the module gives it nothing else to execute.

Imported only after ``replay._lava()`` has imported Lava.
"""
from __future__ import annotations

import errno
import os
import secrets
import typing as ty
from multiprocessing import shared_memory

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyRefPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, RefPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.lif.models import PyLifResetModelBitAcc
from lava.proc.lif.process import LIFReset

PREFIX = "brainleaks-rec-"  # name prefix of every shared memory block created here (/dev/shm/<name>)
SPIKE_DTYPE = np.dtype(np.int32)
VAR_DTYPE = np.dtype(np.int64)


class SharedBuffer:
    """A (steps, *shape) array in a named shared memory block created by the host."""

    def __init__(self, shape: tuple[int, ...], steps: int, dtype) -> None:
        self.shape = (int(steps), *(int(s) for s in shape))
        self.dtype = np.dtype(dtype)
        size = max(1, int(np.prod(self.shape)) * self.dtype.itemsize)
        name = f"{PREFIX}{os.getpid()}-{secrets.token_hex(8)}"
        self._shm = shared_memory.SharedMemory(name=name, create=True, size=size)
        self.name = self._shm.name
        try:
            _reserve(self._shm, size)
        except BaseException:
            self.release()
            raise

    def read(self) -> np.ndarray:
        """A copy of the whole recording (a fresh block reads zeros)."""
        if self._shm is None:
            raise RuntimeError(f"shared buffer {self.name} was released")
        return np.ndarray(self.shape, self.dtype, buffer=self._shm.buf).copy()

    def release(self) -> None:
        """Unlink the block (its name disappears from /dev/shm) and unmap it here; idempotent."""
        shm, self._shm = self._shm, None
        if shm is None:
            return
        try:
            shm.unlink()
        except FileNotFoundError:  # pragma: no cover - removed by someone else
            pass
        finally:
            shm.close()


def _reserve(shm: shared_memory.SharedMemory, size: int) -> None:
    """Allocate the block's pages now: /dev/shm (a tmpfs, 64 MiB in a default Docker container) that
    cannot hold it fails here, in the host, with ENOSPC, not as a SIGBUS in a Lava worker mid-run."""
    fd = getattr(shm, "_fd", -1)
    if fd < 0 or not hasattr(os, "posix_fallocate"):  # pragma: no cover - not Linux / another Python
        return
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as e:
        if e.errno in (errno.EINVAL, errno.EOPNOTSUPP):  # pragma: no cover - no fallocate on this fs
            return
        raise OSError(e.errno, f"cannot reserve {size / 2**20:.1f} MiB of shared memory for a Lava recording "
                               f"({os.strerror(e.errno)}; /dev/shm too small?)") from None


def release_segments_of(pid: int) -> list[str]:
    """Unlink the blocks a process ``pid`` created here and left behind (it was killed before its
    ``SharedBuffers`` ended); returns their names."""
    prefix = f"{PREFIX}{int(pid)}-"
    try:
        names = [n for n in os.listdir("/dev/shm") if n.startswith(prefix)]
    except OSError:  # pragma: no cover - no /dev/shm (not Linux)
        return []
    for name in names:
        try:
            shm = shared_memory.SharedMemory(name=name)
        except FileNotFoundError:  # pragma: no cover - gone meanwhile
            continue
        try:
            shm.unlink()  # also unregisters it from the resource tracker
        finally:
            shm.close()
    return names


class SharedBuffers:
    """Creates ``SharedBuffer`` s and releases all of them when the ``with`` block ends."""

    def __init__(self) -> None:
        self._buffers: list[SharedBuffer] = []

    def new(self, shape: tuple[int, ...], steps: int, dtype) -> SharedBuffer:
        buf = SharedBuffer(shape, steps, dtype)
        self._buffers.append(buf)
        return buf

    def release(self) -> None:
        errors = []
        while self._buffers:
            try:
                self._buffers.pop().release()
            except Exception as e:  # pragma: no cover - keep releasing the others
                errors.append(e)
        if errors:  # pragma: no cover
            raise errors[0]

    def __enter__(self) -> "SharedBuffers":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class SpikeRecorder(AbstractProcess):
    """Receives a vector of ``shape`` every step into ``buffer`` (a ``SharedBuffer`` of SPIKE_DTYPE)."""

    def __init__(self, *, shape: tuple[int, ...], buffer: SharedBuffer, **kwargs) -> None:
        _check(buffer, shape, SPIKE_DTYPE)
        super().__init__(shape=shape, shm_name=buffer.name, shm_shape=buffer.shape,
                         shm_dtype=buffer.dtype.str, **kwargs)
        self.a_in = InPort(shape=shape)


class VarRecorder(AbstractProcess):
    """Reads a Var of ``shape`` every step into ``buffer`` (a ``SharedBuffer`` of VAR_DTYPE); connect with
    ``probe``."""

    def __init__(self, *, shape: tuple[int, ...], buffer: SharedBuffer, **kwargs) -> None:
        _check(buffer, shape, VAR_DTYPE)
        super().__init__(shape=shape, shm_name=buffer.name, shm_shape=buffer.shape,
                         shm_dtype=buffer.dtype.str, **kwargs)
        self.ref = RefPort(shape=shape)

    @classmethod
    def probe(cls, var, buffer: SharedBuffer) -> "VarRecorder":
        rec = cls(shape=var.shape, buffer=buffer)
        rec.ref.connect_var(var)
        return rec


def _check(buffer: SharedBuffer, shape, dtype) -> None:
    if tuple(buffer.shape[1:]) != tuple(shape) or buffer.dtype != dtype:
        raise ValueError(f"buffer {buffer.shape} {buffer.dtype} does not hold (steps, *{tuple(shape)}) {dtype}")


class _SharedRows(PyLoihiProcessModel):
    """Attaches, in the worker, to the block named in the process parameters; ``_row()`` is the current
    step's row (steps beyond the buffer wrap around, as in Lava's ring buffer)."""

    def __init__(self, proc_params: ty.Optional[dict] = None) -> None:
        super().__init__(proc_params)
        self._shm = shared_memory.SharedMemory(name=self.proc_params["shm_name"])
        self._rows = np.ndarray(tuple(self.proc_params["shm_shape"]), np.dtype(self.proc_params["shm_dtype"]),
                                buffer=self._shm.buf)

    def _row(self) -> np.ndarray:
        return self._rows[(self.time_step - 1) % self._rows.shape[0]]


@implements(proc=SpikeRecorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySpikeRecorderModel(_SharedRows):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32)

    def run_spk(self) -> None:
        self._row()[...] = self.a_in.recv()


@implements(proc=VarRecorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyVarRecorderModel(_SharedRows):
    ref: PyRefPort = LavaPyType(PyRefPort.VEC_DENSE, int)

    def post_guard(self) -> bool:
        return True

    def run_post_mgmt(self) -> None:
        self._row()[...] = self.ref.read()


# proc_params keys of a recording neuron: the block each recording goes to (name, shape, dtype)
_NEURON_KEYS = {"s": "brainleaks_rec_spikes", "v": "brainleaks_rec_v", "u": "brainleaks_rec_u"}


def record_in_neuron(neuron, what: str, buffer: SharedBuffer) -> None:
    """Have ``neuron`` (a LIFReset process, see ``NEURON_MODELS``) write ``what`` ("s": the spikes it
    sends, SPIKE_DTYPE; "v" or "u": the Var after each step, VAR_DTYPE) into ``buffer``."""
    if type(neuron) not in NEURON_MODELS:
        raise TypeError(f"{type(neuron).__name__} has no recording model")
    var = neuron.s_out if what == "s" else getattr(neuron, what)
    _check(buffer, var.shape, SPIKE_DTYPE if what == "s" else VAR_DTYPE)
    neuron.proc_params.overwrite(_NEURON_KEYS[what], (buffer.name, buffer.shape, buffer.dtype.str))


class _RecordingNeuron:
    """Mixin for Lava's fixed_pt LIF models: spikes recorded where the model resets the neurons that spiked
    (``reset_voltage``, called once per step with the vector it then sends), ``v`` and ``u`` after
    ``run_spk``. A neuron with no block in its parameters records nothing."""

    def __init__(self, proc_params: ty.Optional[dict] = None) -> None:
        super().__init__(proc_params)
        self._blocks, self._rec = [], {}
        for what, key in _NEURON_KEYS.items():
            where = self.proc_params.get(key)
            if where:
                name, shape, dtype = where
                shm = shared_memory.SharedMemory(name=name)
                self._blocks.append(shm)
                self._rec[what] = np.ndarray(tuple(shape), np.dtype(dtype), buffer=shm.buf)

    def _write(self, what: str, value) -> None:
        rows = self._rec.get(what)
        if rows is not None:
            rows[(self.time_step - 1) % rows.shape[0]] = value

    def reset_voltage(self, spike_vector: np.ndarray) -> None:
        self._write("s", spike_vector)
        super().reset_voltage(spike_vector)

    def run_spk(self) -> None:
        super().run_spk()
        self._write("v", self.v)
        self._write("u", self.u)


@implements(proc=LIFReset, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyRecordingLifResetModel(_RecordingNeuron, PyLifResetModelBitAcc):
    """Lava's fixed_pt ``LIFReset`` model, recording into shared memory."""


# NetX builds LIFReset for CUBA layers when given a reset interval, which the replay always gives
NEURON_MODELS = {LIFReset: PyRecordingLifResetModel}
