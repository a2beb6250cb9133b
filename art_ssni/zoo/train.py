"""Train the digits zoo: a small DDPM UNet, a small CNN classifier, reference statistics and measured metrics.

:func:`train_zoo` writes a folder that :func:`art_ssni.zoo.load` reads::

    out_dir/unet/            diffusers UNet2DModel (config.json + diffusion_pytorch_model.safetensors), EMA weights
    out_dir/scheduler/       the DDPM linear schedule (scheduler_config.json)
    out_dir/classifier.*     DigitsCNN (safetensors weights + JSON architecture)
    out_dir/reference.json   ReferenceStats of the clean training split's score norms
    out_dir/zoo.json         the zoo's defaults (t*, ε, attack) and the data split
    out_dir/metrics.json     what was measured: training time and loss, clean / DiffPure / undefended accuracy

Everything is seeded; on the same machine, thread count and library versions a run is reproducible.
"""

from __future__ import annotations

import copy
import json
import math
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from art_ssni._common import is_finite_real, is_int, versions
from art_ssni.diffusion.architectures import digits_unet
from art_ssni.diffusion.model import DiffusionModel, default_scheduler
from art_ssni.zoo.classifier import DigitsCNN, save_classifier
from art_ssni.zoo.data import DIGITS_TEST_SIZE, load_digits_split
from art_ssni.zoo.files import ZOO_CONFIG, ZOO_METRICS, ZOO_REFERENCE
from art_ssni.zoo.measure import ema_test_loss, evaluate_zoo

__all__ = ["make_digits_unet", "train_zoo"]


def make_digits_unet() -> Any:
    """The zoo's diffusers ``UNet2DModel`` for ``1 x 8 x 8`` images (about 918K parameters, no attention)."""
    return digits_unet()


def _check_int(name: str, value: Any, low: int) -> None:
    if not is_int(value) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}.")


def _check_float(name: str, value: Any, low: float, high: float, *, low_open: bool = True) -> None:
    ok = is_finite_real(value) and (low < value if low_open else low <= value) and value <= high
    if not ok:
        bracket = "(" if low_open else "["
        raise ValueError(f"{name} must be a number in {bracket}{low}, {high}], got {value!r}.")


def _train_unet(
    x_train: np.ndarray,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    ema_decay: float,
    seed: int,
    progress: bool,
) -> tuple[DiffusionModel, list[float]]:
    """ε-prediction DDPM training (Ho et al. 2020, Algorithm 1) with AdamW, cosine LR and an EMA of the weights.

    :param x_train: ``(N, 1, 8, 8)`` float32 pixels in ``[0, 1]``.
    :return: the :class:`DiffusionModel` holding the EMA weights, and the per-step training loss.
    """
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    unet = make_digits_unet().train()
    ema = copy.deepcopy(unet).eval().requires_grad_(False)
    scheduler = default_scheduler()
    abar = torch.as_tensor(scheduler.alphas_cumprod, dtype=torch.float32)
    n_timesteps = abar.shape[0]
    data = DiffusionModel.to_model_space(torch.from_numpy(x_train))
    optimizer = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=1e-4)
    warmup = min(100, max(1, steps // 10))

    def lr_factor(step: int) -> float:  # linear warm-up, then cosine decay to 10 % of lr
        if step < warmup:
            return (step + 1) / warmup
        progress_ = (step - warmup) / max(1, steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress_))

    lr_schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    losses: list[float] = []
    order = torch.randperm(data.shape[0], generator=gen)
    cursor = 0
    bar = tqdm(range(steps), desc="UNet (DDPM)", disable=None if progress else True, mininterval=2.0)
    for step in bar:
        if cursor + batch_size > order.numel():  # a new epoch: reshuffle
            order, cursor = torch.randperm(data.shape[0], generator=gen), 0
        x0 = data[order[cursor : cursor + batch_size]]
        cursor += batch_size
        k = torch.randint(0, n_timesteps, (x0.shape[0],), generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        a = abar[k].view(-1, 1, 1, 1)
        x_t = a.sqrt() * x0 + (1.0 - a).sqrt() * noise
        loss = torch.nn.functional.mse_loss(unet(x_t, k).sample, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        lr_schedule.step()
        decay = min(ema_decay, (1.0 + step) / (10.0 + step))
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), unet.parameters(), strict=True):
                p_ema.lerp_(p, 1.0 - decay)
        losses.append(float(loss.detach()))
        if step % 50 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
    return DiffusionModel(ema, scheduler), losses


def _train_classifier(
    x_train: np.ndarray,
    y_train: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    progress: bool,
) -> DigitsCNN:
    """Cross-entropy training of :class:`DigitsCNN` with Adam; returns the model in ``eval()`` mode."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = DigitsCNN().train()
    x, y = torch.from_numpy(x_train), torch.from_numpy(y_train)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in tqdm(range(epochs), desc="classifier", disable=None if progress else True):
        order = torch.randperm(x.shape[0], generator=gen)
        for i in range(0, x.shape[0], batch_size):
            idx = order[i : i + batch_size]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model.eval()


def train_zoo(
    out_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    unet_steps: int = 3000,
    unet_batch_size: int = 128,
    unet_lr: float = 1e-3,
    ema_decay: float = 0.999,
    classifier_epochs: int = 40,
    classifier_batch_size: int = 64,
    classifier_lr: float = 1e-3,
    t_star: int = 100,
    eps: float = 0.2,
    pgd_iter: int = 40,
    score_steps: int = 20,
    t_star_grid: tuple[int, ...] = (25, 50, 100, 150, 200, 300),
    eps_grid: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2, 0.25),
    eval_size: int | None = None,
    reference_size: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train the digits zoo from scratch into ``out_dir`` and measure it; returns the metrics (also written).

    Data: :func:`art_ssni.zoo.load_digits_split` with ``random_state=seed`` (1,347 train / 450 test images).

    * Diffusion: :func:`make_digits_unet` trained for ``unet_steps`` AdamW steps (batch ``unet_batch_size``,
      linear warm-up then cosine decay of ``unet_lr``, gradient clipping 1.0) on the ε-prediction MSE of the DDPM
      linear schedule (:func:`art_ssni.diffusion.default_scheduler`); the EMA weights (decay ``ema_decay``) are
      saved. No data augmentation.
    * Classifier: :class:`~art_ssni.zoo.classifier.DigitsCNN`, ``classifier_epochs`` epochs of Adam.
    * Reference statistics: :meth:`SSNIPreprocessor.fit` on the training split, or its first ``reference_size``
      images (``score_steps`` = T', seeded).
    * Metrics (test split, or its first ``eval_size`` images): clean accuracy; undefended accuracy under ART
      ``ProjectedGradientDescent`` ℓ∞ (``pgd_iter`` iterations, step ε/8, no random start) for every ε in
      ``eps_grid`` and the default ``eps``; DiffPure (constant ``t*``, ancestral sampler) clean accuracy for every
      ``t*`` in ``t_star_grid`` and the default ``t_star``; DiffPure and SSNI-N accuracy on the undefended PGD
      examples at ``eps`` (a *transfer* check, not an adaptive attack); timings and library versions.

    :param out_dir: folder to write (created if needed; existing zoo files are overwritten).
    :param seed: seed of the split, of every random draw of the training and of the evaluation.
    :param progress: show tqdm progress bars.
    :return: the metrics dict written to ``out_dir/metrics.json``.
    """
    _check_int("seed", seed, 0)
    _check_int("unet_steps", unet_steps, 1)
    _check_int("unet_batch_size", unet_batch_size, 1)
    _check_int("classifier_epochs", classifier_epochs, 1)
    _check_int("classifier_batch_size", classifier_batch_size, 1)
    _check_int("t_star", t_star, 1)
    _check_int("pgd_iter", pgd_iter, 1)
    _check_int("score_steps", score_steps, 1)
    if eval_size is not None:
        _check_int("eval_size", eval_size, 1)
    if reference_size is not None:
        _check_int("reference_size", reference_size, 2)
    _check_float("unet_lr", unet_lr, 0.0, 1.0)
    _check_float("classifier_lr", classifier_lr, 0.0, 1.0)
    _check_float("ema_decay", ema_decay, 0.0, 1.0, low_open=False)
    _check_float("eps", eps, 0.0, 1.0)
    if t_star >= 1000:
        raise ValueError(f"t_star must be an int in [1, 999], got {t_star!r}.")
    if not all(isinstance(t, int) and 1 <= t <= 999 for t in t_star_grid):
        raise ValueError(f"t_star_grid must hold ints in [1, 999], got {t_star_grid!r}.")
    if not all(isinstance(e, (int, float)) and 0 < e <= 1 for e in eps_grid):
        raise ValueError(f"eps_grid must hold numbers in (0, 1], got {eps_grid!r}.")
    train_args = {
        "seed": seed,
        "unet_steps": unet_steps,
        "unet_batch_size": unet_batch_size,
        "unet_lr": unet_lr,
        "ema_decay": ema_decay,
        "classifier_epochs": classifier_epochs,
        "classifier_batch_size": classifier_batch_size,
        "classifier_lr": classifier_lr,
        "t_star": t_star,
        "eps": eps,
        "pgd_iter": pgd_iter,
        "score_steps": score_steps,
        "t_star_grid": list(t_star_grid),
        "eps_grid": list(eps_grid),
        "eval_size": eval_size,
        "reference_size": reference_size,
    }
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    seed = int(seed)
    x_train, y_train, x_test, y_test = load_digits_split(seed=seed, test_size=DIGITS_TEST_SIZE)
    start = time.perf_counter()

    tic = time.perf_counter()
    diffusion, losses = _train_unet(
        x_train,
        steps=unet_steps,
        batch_size=unet_batch_size,
        lr=unet_lr,
        ema_decay=ema_decay,
        seed=seed,
        progress=progress,
    )
    unet_time = time.perf_counter() - tic
    diffusion.save_pretrained(root)

    tic = time.perf_counter()
    classifier = _train_classifier(
        x_train,
        y_train,
        epochs=classifier_epochs,
        batch_size=classifier_batch_size,
        lr=classifier_lr,
        seed=seed,
        progress=progress,
    )
    classifier_time = time.perf_counter() - tic
    save_classifier(classifier, root)

    from art_ssni.preprocessor import SSNIPreprocessor

    tic = time.perf_counter()
    fitter = SSNIPreprocessor(
        diffusion, reweight="sigmoid", score_steps=score_steps, seed=seed, device_type="cpu", batch_size=128
    )
    reference = fitter.fit(x_train if reference_size is None else x_train[: int(reference_size)]).reference
    assert reference is not None  # fit() sets it
    reference.to_json(root / ZOO_REFERENCE)
    reference_time = time.perf_counter() - tic

    config = {
        "name": "digits",
        "t_star": int(t_star),
        "eps": float(eps),
        "eps_step": float(eps) / 8,
        "pgd_iter": int(pgd_iter),
        "score_steps": int(score_steps),
        "nb_classes": 10,
        "clip_values": [0.0, 1.0],
        "input_shape": [1, 8, 8],
        "split": {
            "loader": "sklearn.datasets.load_digits",
            "test_size": DIGITS_TEST_SIZE,
            "random_state": seed,
            "stratify": True,
            "n_train": int(x_train.shape[0]),
            "n_test": int(x_test.shape[0]),
        },
    }
    (root / ZOO_CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")

    tic = time.perf_counter()
    n_eval = x_test.shape[0] if eval_size is None else min(int(eval_size), x_test.shape[0])
    metrics = evaluate_zoo(
        diffusion,
        classifier,
        x_test[:n_eval],
        y_test[:n_eval],
        t_star=int(t_star),
        eps=float(eps),
        pgd_iter=int(pgd_iter),
        reference=reference,
        score_steps=int(score_steps),
        t_star_grid=tuple(t_star_grid),
        eps_grid=tuple(eps_grid),
        seed=seed,
        progress=progress,
    )
    eval_time = time.perf_counter() - tic
    metrics["unet_test_loss_ema"] = ema_test_loss(diffusion, x_test[:n_eval], seed=seed)

    import sklearn

    tail = losses[-min(100, len(losses)) :]
    curve_every = max(1, len(losses) // 30)
    metrics.update(
        {
            "seed": seed,
            "unet_steps": int(unet_steps),
            "unet_batch_size": int(unet_batch_size),
            "unet_lr": float(unet_lr),
            "ema_decay": float(ema_decay),
            "unet_parameters": int(sum(p.numel() for p in diffusion.unet.parameters())),
            "unet_final_loss": float(np.mean(tail)),
            "unet_loss_curve": [
                [min(i + curve_every, len(losses)), float(np.mean(losses[i : i + curve_every]))]
                for i in range(0, len(losses), curve_every)
            ],
            "classifier_epochs": int(classifier_epochs),
            "classifier_parameters": int(sum(p.numel() for p in classifier.parameters())),
            "reference": reference.to_dict(),
            "t_star": int(t_star),
            "eps": float(eps),
            "pgd_iter": int(pgd_iter),
            "time_unet_s": unet_time,
            "time_classifier_s": classifier_time,
            "time_reference_s": reference_time,
            "time_evaluation_s": eval_time,
            "time_total_s": time.perf_counter() - start,
            "torch_threads": int(torch.get_num_threads()),
            "versions": {**versions(), "scikit-learn": sklearn.__version__},  # sklearn ships the digits data
            "platform": f"{platform.system()} {platform.machine()}",
            "train_args": train_args,
        }
    )
    (root / ZOO_METRICS).write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return metrics
