"""Plain helpers shared by tests (fixtures live in conftest.py)."""
import torch


def random_spikes(n, features, steps, p=0.2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, features, steps, generator=g) < p).float()
