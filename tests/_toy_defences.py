"""Toy randomized defences with known answers, as ART PyTorch preprocessors (shared by the attack tests)."""

from __future__ import annotations

import numpy as np
import torch
from art.defences.preprocessor.preprocessor import PreprocessorPyTorch
from art.estimators.classification import PyTorchClassifier

from art_ssni.attacks.low_frequency_pgd import band_project
from art_ssni.evaluation.compare import defended_classifier


class TwoModes(PreprocessorPyTorch):
    """Writes a random mode (1 = hard with probability ``p_hard``, 0 = easy) into feature 1 of ``(N, 2)`` inputs."""

    def __init__(self, p_hard: float = 0.5, seed: int = 0) -> None:
        super().__init__(device_type="cpu", is_fitted=True, apply_fit=False, apply_predict=True)
        self.p_hard = p_hard
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        mode = (torch.rand(x.shape[0], generator=self.generator) < self.p_hard).to(x.dtype).to(x.device)
        return torch.stack([x[:, 0], mode], dim=1), y


class ModeNet(torch.nn.Module):
    """Two classes, true class 0. With ``u = z_0 - 0.5`` the class-0 margin is

    * hard mode (``z_1 = 1``): ``a (c_a - u)``, fooled only for ``u > c_a`` (unreachable when ``c_a > 0.5``);
    * easy mode (``z_1 = 0``): ``b (c_b + u)``, fooled for ``u < -c_b``.

    With ``a = 2.1, c_a = 0.6, b = 0.2, c_b = 0.25`` the hard copies' cross-entropy gradient (toward ``u > 0``) is
    larger than the easy copies' (toward ``u < 0``) everywhere in ``u ∈ [-0.5, 0.5]``: uniform EOT averaging walks to
    ``u = +0.5`` where no copy is fooled, while the easy copies (half of the draws) can be fooled at ``u = -0.5``.
    """

    def __init__(self, a: float = 2.1, c_a: float = 0.6, b: float = 0.2, c_b: float = 0.25) -> None:
        super().__init__()
        self.a, self.c_a, self.b, self.c_b = a, c_a, b, c_b

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        u, hard = z[:, 0] - 0.5, z[:, 1]
        margin = hard * self.a * (self.c_a - u) + (1.0 - hard) * self.b * (self.c_b + u)
        return torch.stack([margin, torch.zeros_like(margin)], dim=1)


def two_modes_classifier(p_hard: float = 0.5, seed: int = 0) -> PyTorchClassifier:
    return PyTorchClassifier(
        ModeNet(),
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=(2,),
        nb_classes=2,
        clip_values=(0.0, 1.0),
        preprocessing_defences=[TwoModes(p_hard, seed)],
        device_type="cpu",
    )


class BandNoise(PreprocessorPyTorch):
    """``P(x) = Π_B(x) + σ z``: keeps the low DCT band of ``x`` and adds fresh Gaussian noise (a crude purifier)."""

    def __init__(self, cutoff: float = 0.25, sigma: float = 0.5, seed: int = 0) -> None:
        super().__init__(device_type="cpu", is_fitted=True, apply_fit=False, apply_predict=True)
        self.cutoff, self.sigma = cutoff, sigma
        self.generator = torch.Generator().manual_seed(seed)
        eye = np.eye(64, dtype=np.float64).reshape(64, 1, 8, 8)
        self.projector = torch.tensor(band_project(eye, cutoff).reshape(64, 64), dtype=torch.float32)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        flat = x.reshape(x.shape[0], 64) @ self.projector.to(x.device)
        noise = torch.randn(flat.shape, generator=self.generator).to(x.device)
        return (flat + self.sigma * noise).reshape(x.shape), y


def band_noise_classifier(seed: int = 0, sigma: float = 0.5) -> PyTorchClassifier:
    """2-class linear classifier on the image mean (a DC weight, inside every band) behind :class:`BandNoise`."""
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
    with torch.no_grad():
        net[1].weight.copy_(torch.stack([torch.full((64,), 1.0 / 8), torch.full((64,), -1.0 / 8)]))
        net[1].bias.copy_(torch.tensor([-4.0 * 0.9, 4.0 * 0.9]))  # class 0 iff the image mean > 0.45
    return defended_classifier(net, BandNoise(sigma=sigma, seed=seed), input_shape=(1, 8, 8), nb_classes=2)


def error_rate(clf: PyTorchClassifier, x: np.ndarray, labels: np.ndarray, draws: int) -> np.ndarray:
    """``(N,)`` share of ``draws`` fresh predictions of each sample that are wrong."""
    rep = np.repeat(x, draws, axis=0)
    pred = clf.predict(rep, batch_size=rep.shape[0]).argmax(axis=1)
    return (pred != np.repeat(labels, draws)).reshape(x.shape[0], draws).mean(axis=1)
