"""Generative priors (issue 29): generators trained on public data, disjoint from a target's training records,
whose latent space an attack searches (``--method gen``).

The interface every prior offers (``Prior``): ``latent_dim``, ``image_shape`` ((C, H, W)), ``provenance`` (a
JSON-able dict saying which public data trained it and which records it never read), ``decode(z)`` mapping latent
codes (N, latent_dim) to images (N, C*H*W) in [0, 1], differentiably, and ``to(device)``.

A prior trained by the toolkit (:func:`.vae.train_prior`) also carries its ``encoder`` (``encode(images)``: the
codes' posterior means, e.g. to start a latent search from public images), its ``architecture`` (what
:func:`.files.load_prior` rebuilds it from) and its ``training`` record (settings, loss history, seconds).

- :mod:`.vae`: the convolutional VAE and its training;
- :mod:`.files`: ``save_prior`` / ``load_prior`` (HDF5, format ``brainleaks-prior/1``);
- :mod:`.public`: the public data a prior may be trained on (``mnist-val``, ``digits``, ``faces-identities:A-B``).
"""
from __future__ import annotations

import torch


class Prior:
    """A decoder (a ``torch.nn.Module`` from latent codes to images with values in [0, 1]) and what it was trained
    on. ``decode`` flattens each image to C*H*W values (the order of the images it was trained on)."""

    def __init__(self, decoder: torch.nn.Module, latent_dim: int, image_shape: tuple[int, ...], provenance: dict,
                 path: str = "", sha256: str = "", *, encoder: torch.nn.Module | None = None,
                 architecture: dict | None = None, training: dict | None = None):
        self.decoder = decoder.eval()
        self.encoder = encoder.eval() if encoder is not None else None
        for module in (self.decoder, self.encoder):
            for p in (module.parameters() if module is not None else ()):
                p.requires_grad_(False)
        self.architecture = dict(architecture or {})
        self.training = dict(training or {})
        self.latent_dim = int(latent_dim)
        self.image_shape = tuple(int(v) for v in image_shape)
        self.provenance = dict(provenance)
        self.path = str(path)
        self.sha256 = sha256

    @property
    def num_features(self) -> int:
        n = 1
        for v in self.image_shape:
            n *= v
        return n

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent codes (N, latent_dim) -> images (N, C*H*W) in [0, 1] (gradients flow to ``z``)."""
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            from ..errors import InputError

            raise InputError(f"latent codes must have shape (N, {self.latent_dim}), got {tuple(z.shape)}")
        return self.decoder(z).reshape(len(z), -1)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images (N, C*H*W) or (N, C, H, W) in [0, 1] -> the means of their codes (N, latent_dim) (a prior with an
        encoder only)."""
        from ..errors import InputError

        if self.encoder is None:
            raise InputError("this prior has no encoder")
        x = torch.as_tensor(images, dtype=torch.float32, device=self.device)
        if x.ndim == 2 and x.shape[1] == self.num_features:
            x = x.reshape(len(x), *self.image_shape)
        if tuple(x.shape[1:]) != self.image_shape:
            raise InputError(f"images must have shape (N, {self.num_features}) or (N, "
                             f"{', '.join(map(str, self.image_shape))}), got {tuple(x.shape)}")
        return self.encoder(x)[0]

    def to(self, device) -> "Prior":
        self.decoder.to(device)
        if self.encoder is not None:
            self.encoder.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.decoder.parameters()).device


__all__ = ["Prior"]
