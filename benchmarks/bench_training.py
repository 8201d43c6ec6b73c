"""Training speed of the SNN targets: lava-dl's blocks vs our fast CUBA kernel vs snnTorch, side by side.

The same network (MNIST 784-3000-10 or AT&T faces 10304-3000-40, T=25), the same batches of real images
rate-coded with the same seeded generator, the same optimizer (Adam, the config's lr, gradient clipping
1.0), the same loss (cross-entropy
of the time-averaged softmax of the output membrane potential) and one torch thread for all three; the
three variants take turns batch by batch so that a change in the machine's load hits them alike.

    (a) lava-dl: ``SpikingMLP`` with ``kernel = "lava"`` (slayer.block.cuba.Dense forward and backward)
    (b) ours:    ``SpikingMLP`` with ``kernel = "fast"`` (brainleaks_lava.models.fast_cuba), same weights
    (c) snnTorch: nn.Linear (no bias) + snn.Leaky(beta=0.7, threshold=1, reset to zero) per layer, stepped
        over time, with lava-dl's exponential surrogate as a custom surrogate (pip install '.[bench]')

Prints wall and CPU time per batch and per epoch (8,000 MNIST / 320 face images), the ratios snnTorch/ours and lava-dl/ours,
the time per phase (encode, forward, backward, optimizer) and where our kernel's time goes by operator.

    .venv/bin/python benchmarks/bench_training.py [--dataset mnist|att-faces] [--batches 10] [--data-root DIR]
"""
from __future__ import annotations

import argparse
import copy
import math
import time
from pathlib import Path

import torch

from brainleaks_lava.data import load_dataset
from brainleaks_lava.data.encoding import dataset_inputs, to_spikes
from brainleaks_lava.models.snn import NeuronConfig, SNNSpec, SpikingMLP

PHASES = ("encode", "forward", "backward", "optimizer")


class Clock:
    """Wall and process CPU time of named phases, summed over calls."""

    def __init__(self):
        self.wall = dict.fromkeys(PHASES, 0.0)
        self.cpu = dict.fromkeys(PHASES, 0.0)

    def add(self, phase, w0, c0):
        self.wall[phase] += time.perf_counter() - w0
        self.cpu[phase] += time.process_time() - c0

    def total(self, which="wall"):
        return sum(getattr(self, which).values())


def snntorch_net(sizes, tau: float, scale: float, threshold: float = 1.0):
    import snntorch as snn
    from snntorch import surrogate

    height = scale / 2 / tau

    def exp_surrogate(input_, grad_input, spikes):  # lava-dl's shape: scale/2/tau * exp(-|v - th| / tau)
        return grad_input * height * torch.exp(-torch.abs(input_) / tau)  # snnTorch passes v - threshold

    grad = surrogate.custom_surrogate(exp_surrogate)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = torch.nn.Linear(sizes[0], sizes[1], bias=False)
            self.fc2 = torch.nn.Linear(sizes[1], sizes[2], bias=False)
            self.lif1 = snn.Leaky(beta=0.7, threshold=threshold, reset_mechanism="zero", spike_grad=grad)
            self.lif2 = snn.Leaky(beta=0.7, threshold=threshold, reset_mechanism="zero", spike_grad=grad)

        def logits(self, x):  # x (N, inputs, T) -> log of the time-averaged softmax of the output membrane
            mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
            mems = []
            for t in range(x.shape[-1]):
                spk1, mem1 = self.lif1(self.fc1(x[..., t]), mem1)
                _, mem2 = self.lif2(self.fc2(spk1), mem2)
                mems.append(mem2)
            v = torch.stack(mems, -1)[..., 2:]
            return torch.logsumexp(torch.log_softmax(v, 1), -1) - math.log(v.shape[-1])

    return Net()


def step(model, clock, images, labels, gen, opt):
    w0, c0 = time.perf_counter(), time.process_time()
    x = to_spikes(images, {"kind": "rate", "steps": 25}, gen)
    clock.add("encode", w0, c0)
    w0, c0 = time.perf_counter(), time.process_time()
    loss = torch.nn.functional.cross_entropy(model.logits(x), labels)
    clock.add("forward", w0, c0)
    w0, c0 = time.perf_counter(), time.process_time()
    opt.zero_grad()
    loss.backward()
    clock.add("backward", w0, c0)
    w0, c0 = time.perf_counter(), time.process_time()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    opt.step()
    clock.add("optimizer", w0, c0)
    return float(loss)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", choices=["mnist", "att-faces"], default="mnist",
                    help="mnist: 784-3000-10, batch 100, lr 5e-5, tau_grad 0.003 (experiments/mnist.toml); att-faces: "
                         "10304-3000-40, batch 20, lr 1e-3, tau_grad 0.03 (experiments/att_faces.toml)")
    ap.add_argument("--batches", type=int, default=10, help="timed batches per variant (MNIST: 80 = one epoch)")
    ap.add_argument("--data-root", default=None,
                    help="dataset directory (default /work/shared/data/mnist or att_faces; MNIST: the vendored "
                         "subset when the directory does not exist)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-snntorch", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    faces = args.dataset == "att-faces"
    root = args.data_root or f"/work/shared/data/{'att_faces' if faces else 'mnist'}"
    root = root if Path(root).is_dir() or faces else None
    ds = load_dataset(args.dataset, root, split="train")
    batch_size, lr = (20, 1e-3) if faces else (100, 5e-5)
    args.batch_size = batch_size
    images = torch.as_tensor(dataset_inputs(ds), dtype=torch.float32)
    labels = torch.as_tensor(ds.labels, dtype=torch.long)
    need = (args.batches + 1) * args.batch_size
    if need > len(labels):
        raise SystemExit(f"{len(labels)} images; {args.batches + 1} batches of {args.batch_size} need {need}")

    torch.manual_seed(0)
    neuron = NeuronConfig() if faces else NeuronConfig(tau_grad=0.003)  # the configs' recipes
    sizes = (int(images[0].numel()), 3000, len(ds.classes))
    lava = SpikingMLP(SNNSpec(sizes=sizes, steps=25, neuron=neuron))
    lava.kernel = "lava"
    ours = copy.deepcopy(lava)
    ours.kernel = "fast"
    variants = {"lava-dl": lava, "ours": ours}
    if not args.no_snntorch:
        n = lava.blocks[0].neuron
        net = snntorch_net(sizes, tau=n.tau_rho * 100, scale=n.scale_rho * 0.1)
        with torch.no_grad():  # the same (quantized) starting weights
            for fc, b in ((net.fc1, lava.blocks[0]), (net.fc2, lava.blocks[1])):
                fc.weight.copy_(b.synapse._pre_hook_fx(b.synapse.weight).reshape(fc.weight.shape))
        variants["snnTorch"] = net
    opts = {k: torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=lr) for k, m in variants.items()}
    gens = {k: torch.Generator().manual_seed(0) for k in variants}
    clocks = {k: Clock() for k in variants}
    losses = {k: [] for k in variants}

    def batch(i):
        sl = slice(i * args.batch_size, (i + 1) * args.batch_size)
        return images[sl], labels[sl]

    for k, m in variants.items():  # warm-up batch (numba compilation / cache load, allocator), not timed
        step(m, Clock(), *batch(0), gens[k], opts[k])
    for i in range(1, args.batches + 1):
        for k, m in variants.items():
            losses[k].append(step(m, clocks[k], *batch(i), gens[k], opts[k]))

    per_epoch = len(labels) / args.batch_size
    print(f"{args.dataset}: {'-'.join(map(str, sizes))} CUBA SNN, T=25, batch {args.batch_size}, Adam lr {lr:g}, "
          f"{args.threads} torch thread(s), {args.batches} batches per variant, interleaved; "
          f"an epoch = {len(labels)} images")
    print(f"{'variant':10s} {'wall s/batch':>12s} {'cpu s/batch':>12s} {'wall s/epoch':>13s} {'cpu s/epoch':>12s}"
          f"   " + "  ".join(f"{p:>9s}" for p in PHASES) + "   (cpu s/batch per phase)")
    for k, c in clocks.items():
        w, cp = c.total("wall") / args.batches, c.total("cpu") / args.batches
        print(f"{k:10s} {w:12.3f} {cp:12.3f} {w * per_epoch:13.1f} {cp * per_epoch:12.1f}   "
              + "  ".join(f"{c.cpu[p] / args.batches:9.3f}" for p in PHASES))
    ours_w, ours_c = clocks["ours"].total("wall"), clocks["ours"].total("cpu")
    for k in variants:
        if k != "ours":
            print(f"ratio {k}/ours: wall {clocks[k].total('wall') / ours_w:.2f}x, "
                  f"cpu {clocks[k].total('cpu') / ours_c:.2f}x")
    dw = max(float((a - b).abs().max()) for a, b in zip(lava.parameters(), ours.parameters()))
    print(f"lava-dl vs ours after {args.batches + 1} steps: losses identical in "
          f"{sum(a == b for a, b in zip(losses['lava-dl'], losses['ours']))}/{args.batches} batches, "
          f"largest loss difference {max(abs(a - b) for a, b in zip(losses['lava-dl'], losses['ours'])):.2e}, "
          f"largest weight difference {dw:.2e}")

    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(1, 3):
            step(ours, Clock(), *batch(i), gens["ours"], opts["ours"])
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    groups = {
        "matrix products (synapses, forward + weight gradients)": ("aten::mm", "aten::addmm", "aten::bmm"),
        "CUBA forward loop (numba) + spike": ("_CubaTM",),
    }
    print("where our kernel's time goes (self CPU time, 2 profiled batches):")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:12]:
        print(f"  {e.key:32s} {100 * e.self_cpu_time_total / total:5.1f}%  ({e.count} calls)")
    for name, keys in groups.items():
        share = sum(e.self_cpu_time_total for e in events if e.key in keys) / total
        print(f"  = {name}: {100 * share:.1f}%")


if __name__ == "__main__":
    main()
