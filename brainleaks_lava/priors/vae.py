"""A small convolutional VAE in plain PyTorch: the generative prior of ``brainleaks train-prior``.

The encoder resizes an image (C, H, W) to the working size ``work_shape`` (``F.interpolate``, area), then halves it
with one stride-2 4x4 convolution per entry of ``channels`` (LeakyReLU), a dense layer of ``hidden`` units and two
heads: the mean and log-variance of a Gaussian over ``latent_dim`` codes. The decoder mirrors it (dense layers,
stride-2 transposed convolutions) to logits at the working size, resizes them to (H, W) (bilinear) and applies a
sigmoid: every decoded pixel lies in [0, 1]. The working size is (H, W) itself for small images (MNIST 28x28) and
about half of it for larger ones (AT&T faces 112x92 -> 56x48), rounded to a multiple of 2**len(channels).

Training (:func:`train_prior`) minimises the negative ELBO: the Bernoulli cross-entropy of the decoded image with
the (grey-level) image, summed over pixels, plus ``beta`` times the KL divergence of the code's posterior from
N(0, I), averaged over the batch; Adam, seeded (initial weights, shuffling, the reparameterisation noise and the
augmentation draw from generators seeded by ``seed``; the global RNG is left as it was).
"""
from __future__ import annotations

import logging
import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from ..progress import progress_bar, status
from . import Prior

log = logging.getLogger(__name__)

ARCH_KIND = "conv-vae"
MAX_LATENT = 1024
MAX_CHANNELS = 1024
MAX_STAGES = 5
MAX_HIDDEN = 8192
MAX_IMAGE_SIDE = 1024
WORK_SIDE = 56  # larger images are worked on at about this size (the longer side)


def training_defaults(dataset: str) -> dict:
    """``train_prior``'s epochs and augmentation as ``brainleaks train-prior`` sets them for ``dataset`` (mnist,
    att-faces): faces get more epochs, larger shifts and left-right mirroring."""
    faces = dataset == "att-faces"
    return {"epochs": 400 if faces else 100, "shift": 2 if faces else 1, "flip": faces}


def default_latent_dim(image_shape) -> int:
    """16 for MNIST-size images (at most 32x32), 32 for larger ones (AT&T faces)."""
    return 16 if max(image_shape[1:]) <= 32 else 32


def default_architecture(image_shape, latent_dim: int | None = None) -> dict:
    """The architecture :func:`train_prior` uses for images of ``image_shape`` (C, H, W) unless told otherwise."""
    c, h, w = (int(v) for v in image_shape)
    stages = 2 if max(h, w) <= 32 else 3
    m = 2 ** stages
    scale = min(1.0, WORK_SIDE / max(h, w))
    work = [max(m, int(round(d * scale / m)) * m) for d in (h, w)]
    channels = [32, 64] if stages == 2 else [32, 64, 128]
    return {"kind": ARCH_KIND, "image_shape": [c, h, w], "latent_dim": int(latent_dim or default_latent_dim(image_shape)),
            "work_shape": work, "channels": channels, "hidden": 256}


def check_architecture(arch, error=InputError, where: str = "architecture") -> dict:
    """``arch`` as a clean architecture dict, every field checked (type and bound); ``error`` naming ``where`` and
    the field otherwise (``ModelFileError`` when it comes from a file)."""
    if not isinstance(arch, dict):
        raise error(f"{where}: must be a JSON object, got {type(arch).__name__}")
    expected = {"kind", "image_shape", "latent_dim", "work_shape", "channels", "hidden"}
    if set(arch) != expected:
        extra, missing = sorted(set(arch) - expected), sorted(expected - set(arch))
        raise error(f"{where}: " + "; ".join(
            ([f"unknown field(s) {', '.join(extra)}"] if extra else []) +
            ([f"missing field(s) {', '.join(missing)}"] if missing else [])))
    if arch["kind"] != ARCH_KIND:
        raise error(f"{where}: kind must be {ARCH_KIND!r}, got {arch['kind']!r}")

    def ints(key, n, lo, hi):
        v = arch[key]
        if (not isinstance(v, list) or (n is not None and len(v) != n) or not v
                or any(isinstance(x, bool) or not isinstance(x, int) or not lo <= x <= hi for x in v)):
            size = f"{n} " if n is not None else ""
            raise error(f"{where}: '{key}' must be a list of {size}integers in {lo}..{hi}, got {v!r}")
        return [int(x) for x in v]

    def one(key, lo, hi):
        v = arch[key]
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise error(f"{where}: '{key}' must be an integer in {lo}..{hi}, got {v!r}")
        return int(v)

    image = ints("image_shape", 3, 1, MAX_IMAGE_SIDE)
    if image[0] > 4:
        raise error(f"{where}: 'image_shape' must have 1 to 4 channels, got {image[0]}")
    work = ints("work_shape", 2, 1, MAX_IMAGE_SIDE)
    channels = ints("channels", None, 1, MAX_CHANNELS)
    if len(channels) > MAX_STAGES:
        raise error(f"{where}: 'channels' lists {len(channels)} stages, at most {MAX_STAGES}")
    m = 2 ** len(channels)
    if work[0] % m or work[1] % m:
        raise error(f"{where}: 'work_shape' {work} must be divisible by 2**{len(channels)} = {m} (one halving per "
                    f"entry of 'channels')")
    return {"kind": ARCH_KIND, "image_shape": image, "latent_dim": one("latent_dim", 1, MAX_LATENT),
            "work_shape": work, "channels": channels, "hidden": one("hidden", 1, MAX_HIDDEN)}


class Encoder(nn.Module):
    """Images (N, C, H, W) in [0, 1] -> (mean, log-variance) of the code, each (N, latent_dim)."""

    def __init__(self, arch: dict):
        super().__init__()
        c, _, _ = arch["image_shape"]
        self.work_shape = tuple(arch["work_shape"])
        layers, prev = [], c
        for ch in arch["channels"]:
            layers += [nn.Conv2d(prev, ch, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            prev = ch
        self.conv = nn.Sequential(*layers)
        m = 2 ** len(arch["channels"])
        flat = prev * (self.work_shape[0] // m) * (self.work_shape[1] // m)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(flat, arch["hidden"]), nn.LeakyReLU(0.2))
        self.mu = nn.Linear(arch["hidden"], arch["latent_dim"])
        self.logvar = nn.Linear(arch["hidden"], arch["latent_dim"])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if tuple(x.shape[-2:]) != self.work_shape:
            x = F.interpolate(x, size=self.work_shape, mode="area")
        h = self.fc(self.conv(x))
        return self.mu(h), self.logvar(h)


class Decoder(nn.Module):
    """Codes (N, latent_dim) -> images (N, C, H, W) in [0, 1] (``logits`` gives the values before the sigmoid)."""

    def __init__(self, arch: dict):
        super().__init__()
        c, h, w = arch["image_shape"]
        self.image_shape = (c, h, w)
        self.work_shape = tuple(arch["work_shape"])
        chans = list(arch["channels"])
        m = 2 ** len(chans)
        self.start = (chans[-1], self.work_shape[0] // m, self.work_shape[1] // m)
        self.fc = nn.Sequential(nn.Linear(arch["latent_dim"], arch["hidden"]), nn.LeakyReLU(0.2),
                                nn.Linear(arch["hidden"], int(np.prod(self.start))), nn.LeakyReLU(0.2))
        layers = []
        outs = chans[-2::-1] + [c]
        prev = chans[-1]
        for i, ch in enumerate(outs):
            layers.append(nn.ConvTranspose2d(prev, ch, 4, stride=2, padding=1))
            if i < len(outs) - 1:
                layers.append(nn.LeakyReLU(0.2))
            prev = ch
        self.deconv = nn.Sequential(*layers)

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        x = self.deconv(self.fc(z).reshape(len(z), *self.start))
        if tuple(x.shape[-2:]) != self.image_shape[1:]:
            x = F.interpolate(x, size=self.image_shape[1:], mode="bilinear", align_corners=False)
        return x

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(z))


class ConvVAE(nn.Module):
    """Encoder and decoder of one architecture (a dict of :func:`check_architecture`)."""

    def __init__(self, arch: dict):
        super().__init__()
        self.arch = check_architecture(arch)
        self.encoder = Encoder(self.arch)
        self.decoder = Decoder(self.arch)

    def config(self) -> dict:
        return dict(self.arch)


def shift_images(img: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``img`` (N, C, H, W) moved by ``dy`` rows and ``dx`` columns, zeros moving in at the border."""
    out = torch.zeros_like(img)
    h, w = img.shape[-2:]
    if abs(dy) >= h or abs(dx) >= w:
        return out
    src_y, dst_y = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    src_x, dst_x = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[..., dst_y, dst_x] = img[..., src_y, src_x]
    return out


def _shifted(x: torch.Tensor, shift: int, flip: bool, gen: torch.Generator) -> torch.Tensor:
    """Each image of ``x`` (N, C, H, W) moved by a random whole number of pixels in -shift..shift along each axis
    (the vacated border is 0) and, with ``flip``, mirrored left-right with probability 1/2."""
    n = len(x)
    out = x
    if flip:
        mirror = torch.rand(n, generator=gen) < 0.5
        out = torch.where(mirror[:, None, None, None], out.flip(-1), out)
    if shift > 0:
        # crop offsets 0..2*shift of the image padded by shift on every side: a move by shift - offset
        dy = (shift - torch.randint(0, 2 * shift + 1, (n,), generator=gen)).tolist()
        dx = (shift - torch.randint(0, 2 * shift + 1, (n,), generator=gen)).tolist()
        out = torch.cat([shift_images(out[i:i + 1], dy[i], dx[i]) for i in range(n)])
    return out


def vae_loss(vae: ConvVAE, x: torch.Tensor, gen: torch.Generator, beta: float) -> tuple[torch.Tensor, dict]:
    """The negative ELBO of a batch (mean over images): summed pixel cross-entropy + ``beta`` KL."""
    mu, logvar = vae.encoder(x)
    logvar = logvar.clamp(-20.0, 10.0)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=gen)
    rec = F.binary_cross_entropy_with_logits(vae.decoder.logits(z), x, reduction="sum") / len(x)
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / len(x)
    return rec + beta * kl, {"reconstruction": float(rec), "kl": float(kl)}


MAX_PRIOR_IMAGES = 1_000_000


def train_prior(images, latent_dim: int | None = None, epochs: int = 100, batch_size: int = 64, lr: float = 2e-3,
                seed: int = 0, threads: int = 0, progress: bool = True, *, beta: float = 1.0, shift: int = 0,
                flip: bool = False, architecture: dict | None = None, provenance: dict | None = None) -> Prior:
    """Train a :class:`ConvVAE` on ``images`` ((N, C, H, W), or (N, H, W) for one channel; floats in [0, 1]) and
    return its decoder as a :class:`~brainleaks_lava.priors.Prior` (with its encoder and the training's record).

    ``latent_dim``: default :func:`default_latent_dim` (16 for MNIST-size images, 32 for faces); ``architecture``:
    a full architecture dict instead of :func:`default_architecture`. ``beta``: the weight of the KL term.
    ``shift`` / ``flip``: light augmentation, each epoch's images moved by up to ``shift`` pixels and (``flip``)
    mirrored left-right at random (0 / False: none). ``threads``: torch CPU threads (0: torch's default); denormal
    floats are flushed to zero as in every training of the toolkit. ``progress``: a progress bar per epoch and one
    status line per epoch. ``provenance``: what the images are (stored with the prior). Deterministic for a given
    ``seed`` and thread count; the global RNG is untouched.
    """
    from ..models.training import apply_threads
    from ..safety import MAX_COUNTS, check_count

    x = torch.as_tensor(np.asarray(images), dtype=torch.float32)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or len(x) == 0 or any(d == 0 for d in x.shape[1:]):
        raise InputError(f"images must have shape (N, C, H, W) or (N, H, W) with N >= 1, got {tuple(x.shape)}")
    if len(x) > MAX_PRIOR_IMAGES:
        raise InputError(f"at most {MAX_PRIOR_IMAGES:,} images train a prior, got {len(x):,}")
    if not torch.isfinite(x).all() or float(x.min()) < 0 or float(x.max()) > 1:
        raise InputError("images must hold finite values in [0, 1]")
    epochs = check_count(epochs, "epochs", MAX_COUNTS["epochs"][0], 1)
    batch_size = check_count(batch_size, "batch_size", MAX_COUNTS["batch_size"][0], 1)
    seed = check_count(seed, "seed", MAX_COUNTS["seed"][0], 0)
    shift = check_count(shift, "shift", 16, 0, " (pixels)")
    for name, v in (("lr", lr), ("beta", beta)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0 < v < math.inf):
            raise InputError(f"{name} must be a positive finite number, got {v!r}")
    if not isinstance(flip, bool):
        raise InputError(f"flip must be true or false, got {flip!r}")
    image_shape = tuple(int(v) for v in x.shape[1:])
    if architecture is None:
        architecture = default_architecture(image_shape, latent_dim)
    elif latent_dim is not None and architecture.get("latent_dim") != latent_dim:
        raise InputError(f"latent_dim {latent_dim} differs from the architecture's {architecture.get('latent_dim')}")
    arch = check_architecture(architecture)
    if tuple(arch["image_shape"]) != image_shape:
        raise InputError(f"the architecture is for images of shape {tuple(arch['image_shape'])}, the images have "
                         f"shape {image_shape}")
    apply_threads(threads)
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.random.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))  # scoped: weight init
        vae = ConvVAE(arch)
    opt = torch.optim.Adam(vae.parameters(), lr=lr)
    n = len(x)
    history = {"loss": [], "reconstruction": [], "kl": []}
    t0 = time.monotonic()
    vae.train()
    for epoch in range(epochs):
        order = torch.randperm(n, generator=gen)
        totals = {"loss": 0.0, "reconstruction": 0.0, "kl": 0.0}
        bar = progress_bar(range(0, n, batch_size), desc=f"prior epoch {epoch + 1}/{epochs}", disable=not progress)
        for i in bar:
            batch = x[order[i:i + batch_size]]
            if shift or flip:
                batch = _shifted(batch, shift, flip, gen)
            loss, parts = vae_loss(vae, batch, gen, beta)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"prior training diverged (loss {loss.item()}) at epoch {epoch + 1}")
            opt.zero_grad()
            loss.backward()
            opt.step()
            k = len(batch)
            totals["loss"] += float(loss) * k
            for key, v in parts.items():
                totals[key] += v * k
            bar.set_postfix(loss=f"{totals['loss'] / min(i + k, n):.2f}")
        for key in history:
            history[key].append(round(totals[key] / n, 4))
        msg = (f"prior epoch {epoch + 1}/{epochs}: loss {history['loss'][-1]:.2f} (reconstruction "
               f"{history['reconstruction'][-1]:.2f}, KL {history['kl'][-1]:.2f})")
        log.debug(msg)
        if progress:
            status(msg)
    seconds = time.monotonic() - t0
    vae.eval()
    training = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "beta": beta, "shift": shift,
                "flip": flip, "threads": threads, "images": n, "history": history, "seconds": round(seconds, 1),
                "final_loss": history["loss"][-1]}
    return Prior(vae.decoder, arch["latent_dim"], image_shape, provenance or {}, encoder=vae.encoder,
                 architecture=arch, training=training)


def build_vae(arch: dict) -> ConvVAE:
    """A :class:`ConvVAE` of ``arch`` (weights as PyTorch initialises them; a loader overwrites them)."""
    return ConvVAE(arch)


__all__ = ["ConvVAE", "Encoder", "Decoder", "train_prior", "default_architecture", "default_latent_dim",
           "check_architecture", "build_vae", "vae_loss"]
