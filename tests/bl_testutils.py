"""Plain helpers shared by tests (fixtures live in conftest.py)."""
import numpy as np
import torch


def random_spikes(n, features, steps, p=0.2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, features, steps, generator=g) < p).float()


def assert_lava_run_equals_twin(net_path, x, min_voltage=0.0):
    """Replay spike trains ``x`` of the NetX file on Lava (one run per sample) and assert that output spikes
    and the output voltages its posterior reads equal the twin's; returns the twin's output spikes."""
    from brainleaks_lava.hardware.equivalence import replayed_voltage
    from brainleaks_lava.hardware.replay import replay
    from brainleaks_lava.models.files import load_snn

    twin = load_snn(net_path)
    with torch.no_grad():
        expected, expected_v = twin.model.run(x)
    got, got_v = replay(net_path, x.numpy(), mode="per-sample", progress=False,
                          voltage=replayed_voltage(twin.spec))
    expected_v = expected_v.double().numpy()
    expected_v[:, :, :twin.model.settle] = 0  # the first L steps hold the previous run's spikes in flight
    assert np.abs(expected_v).max() > min_voltage
    np.testing.assert_array_equal(got, expected.numpy())
    np.testing.assert_array_equal(got_v, expected_v)
    return expected


def modules_loaded_by(code: str, roots: tuple[str, ...], cwd) -> list[str]:
    """Run ``code`` in a fresh interpreter (from ``cwd``) and return the loaded modules whose top-level package is
    one of ``roots`` (what a start-up path imports). The code must succeed."""
    import subprocess
    import sys

    probe = code + (f"\nimport sys\nprint(sorted(m for m in sys.modules if m.split('.')[0] in {tuple(roots)!r}))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=cwd, timeout=120)
    assert out.returncode == 0, out.stderr
    return eval(out.stdout.strip().splitlines()[-1])  # a list literal of module names printed above
