"""What the zoo trainer measures: classifier, DiffPure, SSNI-N and undefended-PGD accuracies, and the UNet's ε-MSE.

Kept apart from the trainer (:mod:`art_ssni.zoo.train`) so that the measurements can be rerun on shipped weights
and loading the zoo never imports the trainer. The numbers land in ``metrics.json`` and ``docs/zoo.md``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from art_ssni.diffusion.model import DiffusionModel

__all__ = ["accuracy", "ema_test_loss", "evaluate_zoo"]


def accuracy(classifier: torch.nn.Module, x: np.ndarray | torch.Tensor, y: np.ndarray) -> float:
    """Top-1 accuracy of ``classifier`` on ``(N, C, H, W)`` inputs ``x`` and ``(N,)`` labels ``y`` (batches of 512)."""
    xt = torch.as_tensor(x, dtype=torch.float32)
    with torch.no_grad():
        pred = torch.cat([classifier(xt[i : i + 512]).argmax(1) for i in range(0, xt.shape[0], 512)]).numpy()
    return float(np.mean(pred == y))


def ema_test_loss(model: DiffusionModel, x_test: np.ndarray, *, seed: int, repeats: int = 4) -> float:
    """ε-MSE of the (EMA) model on held-out images, uniform timesteps, seeded noise."""
    gen = torch.Generator().manual_seed(seed + 1)
    x0 = DiffusionModel.to_model_space(torch.from_numpy(x_test)).repeat(repeats, 1, 1, 1)
    k = torch.randint(0, model.num_timesteps, (x0.shape[0],), generator=gen)
    noise = torch.randn(x0.shape, generator=gen)
    with torch.no_grad():
        x_t = model.add_noise(x0, k + 1, noise)  # level k + 1 uses ᾱ[k], the UNet's timestep index k
        eps = torch.cat([model.eps(x_t[i : i + 512], k[i : i + 512]) for i in range(0, x0.shape[0], 512)])
    return float(torch.nn.functional.mse_loss(eps, noise))


def evaluate_zoo(
    diffusion: DiffusionModel,
    classifier: torch.nn.Module,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    t_star: int,
    eps: float,
    pgd_iter: int,
    reference: Any,
    score_steps: int,
    t_star_grid: tuple[int, ...],
    eps_grid: tuple[float, ...],
    seed: int,
    progress: bool,
) -> dict[str, Any]:
    """Clean, DiffPure, SSNI-N and undefended-PGD accuracies of a zoo on a test set.

    :param x_test: ``(N, 1, 8, 8)`` float32 pixels in ``[0, 1]``; ``y_test``: ``(N,)`` int64 labels.
    :return: a JSON-serialisable dict (see ``docs/zoo.md`` for the meaning of each field).
    """
    from art.attacks.evasion import ProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    from art_ssni.preprocessor import SSNIPreprocessor

    out: dict[str, Any] = {"n_test_images": int(x_test.shape[0])}
    out["classifier_clean_accuracy"] = accuracy(classifier, x_test, y_test)

    # Undefended ART PGD ℓ∞ (no random start), over a grid of ε; the zoo default ε is always included.
    art_clf = PyTorchClassifier(
        model=classifier,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=tuple(x_test.shape[1:]),
        nb_classes=10,
        clip_values=(0.0, 1.0),
        device_type="cpu",
    )
    undefended: dict[str, float] = {}
    x_adv_default = None
    for e in sorted(set(eps_grid) | {eps}):
        attack = ProjectedGradientDescent(
            art_clf,
            norm=np.inf,
            eps=e,
            eps_step=e / 8,
            max_iter=pgd_iter,
            num_random_init=0,
            batch_size=256,
            verbose=False,
        )
        x_adv = attack.generate(x=x_test.copy(), y=y_test)
        undefended[f"{e:g}"] = accuracy(classifier, x_adv, y_test)
        if e == eps:
            x_adv_default = x_adv.astype(np.float32)
    assert x_adv_default is not None  # eps is always in the grid
    out["undefended_pgd_accuracy"] = undefended
    out["undefended_robust_accuracy"] = undefended[f"{eps:g}"]

    def defended_accuracy(pre: SSNIPreprocessor, x: np.ndarray) -> float:
        purified, _ = pre(x)
        return accuracy(classifier, purified, y_test)

    # DiffPure (constant t*) clean accuracy over a grid of t*, ancestral sampler, seeded.
    diffpure: dict[str, float] = {}
    grid = sorted(set(t_star_grid) | {t_star})
    for t in tqdm(grid, desc="DiffPure t* grid", disable=None if progress else True):
        pre = SSNIPreprocessor(diffusion, reweight="constant", t_star=t, seed=seed, device_type="cpu", batch_size=256)
        diffpure[str(t)] = defended_accuracy(pre, x_test)
    out["diffpure_clean_accuracy_by_t_star"] = diffpure
    out["diffpure_clean_accuracy"] = diffpure[str(t_star)]
    common = dict(t_star=t_star, seed=seed, device_type="cpu", batch_size=256)
    pre = SSNIPreprocessor(diffusion, reweight="constant", **common)  # type: ignore[arg-type]
    out["diffpure_transfer_accuracy"] = defended_accuracy(pre, x_adv_default)
    ssni = SSNIPreprocessor(diffusion, reweight="sigmoid", score_steps=score_steps, reference=reference, **common)  # type: ignore[arg-type]
    out["ssni_n_clean_accuracy"] = defended_accuracy(ssni, x_test)
    ssni.reset_generator()
    out["ssni_n_transfer_accuracy"] = defended_accuracy(ssni, x_adv_default)
    ssni.reset_generator()
    out["ssni_n_mean_t_clean"] = float(np.mean(ssni.timesteps(x_test)))
    ssni.reset_generator()
    out["ssni_n_mean_t_adversarial"] = float(np.mean(ssni.timesteps(x_adv_default)))
    return out
