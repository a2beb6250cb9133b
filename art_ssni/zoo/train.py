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

__all__ = ["ZOO_DEFAULTS", "make_digits_unet", "train_zoo"]


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


#: the defaults of :func:`train_zoo` that land in ``zoo.json``: they reproduce the shipped zoo's file
#: (``tests/test_zoo.py`` retrains a tiny zoo and compares every field)
ZOO_DEFAULTS: dict[str, Any] = {"t_star": 200, "eps": 0.2, "pgd_iter": 40, "score_steps": 5, "seed": 0}


def _check_train_args(args: dict[str, Any]) -> None:
    """Step 0: every argument of :func:`train_zoo` checked before anything is written (``ValueError`` naming it)."""
    _check_int("seed", args["seed"], 0)
    for name in ("unet_steps", "unet_batch_size", "classifier_epochs", "classifier_batch_size", "t_star", "pgd_iter"):
        _check_int(name, args[name], 1)
    _check_int("score_steps", args["score_steps"], 1)
    if args["eval_size"] is not None:
        _check_int("eval_size", args["eval_size"], 1)
    if args["reference_size"] is not None:
        _check_int("reference_size", args["reference_size"], 2)
    _check_float("unet_lr", args["unet_lr"], 0.0, 1.0)
    _check_float("classifier_lr", args["classifier_lr"], 0.0, 1.0)
    _check_float("ema_decay", args["ema_decay"], 0.0, 1.0, low_open=False)
    _check_float("eps", args["eps"], 0.0, 1.0)
    if args["t_star"] >= 1000:
        raise ValueError(f"t_star must be an int in [1, 999], got {args['t_star']!r}.")
    if not all(isinstance(t, int) and 1 <= t <= 999 for t in args["t_star_grid"]):
        raise ValueError(f"t_star_grid must hold ints in [1, 999], got {args['t_star_grid']!r}.")
    if not all(isinstance(e, (int, float)) and 0 < e <= 1 for e in args["eps_grid"]):
        raise ValueError(f"eps_grid must hold numbers in (0, 1], got {args['eps_grid']!r}.")


def _fit_reference(
    diffusion: DiffusionModel, x_train: np.ndarray, *, score_steps: int, seed: int, reference_size: int | None
) -> Any:
    """Step 3: :class:`~art_ssni.ssni.ReferenceStats` of the clean training split's score norms (seeded bank)."""
    from art_ssni.preprocessor import SSNIPreprocessor

    fitter = SSNIPreprocessor(
        diffusion, reweight="sigmoid", score_steps=score_steps, seed=seed, device_type="cpu", batch_size=128
    )
    reference = fitter.fit(x_train if reference_size is None else x_train[: int(reference_size)]).reference
    assert reference is not None  # fit() sets it
    return reference


def _zoo_config(
    *, t_star: int, eps: float, pgd_iter: int, score_steps: int, seed: int, n_train: int, n_test: int
) -> dict[str, Any]:
    """Step 4: the content of ``zoo.json`` -- the zoo's defaults (t*, ε, attack, T') and its data split."""
    return {
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
            "random_state": int(seed),
            "stratify": True,
            "n_train": int(n_train),
            "n_test": int(n_test),
        },
    }


def _training_record(
    args: dict[str, Any],
    *,
    diffusion: DiffusionModel,
    classifier: torch.nn.Module,
    losses: list[float],
    reference: Any,
    times: dict[str, float],
) -> dict[str, Any]:
    """Step 6: what the training itself produced (settings, sizes, loss curve, timings, versions) for
    ``metrics.json``, beside the measurements of :func:`~art_ssni.zoo.measure.evaluate_zoo`."""
    import sklearn

    tail = losses[-min(100, len(losses)) :]
    curve_every = max(1, len(losses) // 30)
    return {
        "seed": int(args["seed"]),
        "unet_steps": int(args["unet_steps"]),
        "unet_batch_size": int(args["unet_batch_size"]),
        "unet_lr": float(args["unet_lr"]),
        "ema_decay": float(args["ema_decay"]),
        "unet_parameters": int(sum(p.numel() for p in diffusion.unet.parameters())),
        "unet_final_loss": float(np.mean(tail)),
        "unet_loss_curve": [
            [min(i + curve_every, len(losses)), float(np.mean(losses[i : i + curve_every]))]
            for i in range(0, len(losses), curve_every)
        ],
        "classifier_epochs": int(args["classifier_epochs"]),
        "classifier_parameters": int(sum(p.numel() for p in classifier.parameters())),
        "reference": reference.to_dict(),
        "t_star": int(args["t_star"]),
        "eps": float(args["eps"]),
        "pgd_iter": int(args["pgd_iter"]),
        **{f"time_{name}_s": seconds for name, seconds in times.items()},
        "torch_threads": int(torch.get_num_threads()),
        "versions": {**versions(), "scikit-learn": sklearn.__version__},  # sklearn ships the digits data
        "platform": f"{platform.system()} {platform.machine()}",
        "train_args": {**args, "t_star_grid": list(args["t_star_grid"]), "eps_grid": list(args["eps_grid"])},
    }


def train_zoo(
    out_dir: str | os.PathLike[str],
    *,
    seed: int = ZOO_DEFAULTS["seed"],
    unet_steps: int = 3000,
    unet_batch_size: int = 128,
    unet_lr: float = 1e-3,
    ema_decay: float = 0.999,
    classifier_epochs: int = 40,
    classifier_batch_size: int = 64,
    classifier_lr: float = 1e-3,
    t_star: int = ZOO_DEFAULTS["t_star"],
    eps: float = ZOO_DEFAULTS["eps"],
    pgd_iter: int = ZOO_DEFAULTS["pgd_iter"],
    score_steps: int = ZOO_DEFAULTS["score_steps"],
    t_star_grid: tuple[int, ...] = (25, 50, 100, 150, 200, 300),
    eps_grid: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2, 0.25),
    eval_size: int | None = None,
    reference_size: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train the digits zoo from scratch into ``out_dir`` and measure it; returns the metrics (also written).

    The defaults reproduce the shipped zoo's ``zoo.json`` (:data:`ZOO_DEFAULTS`: ``t* = 200``, ``ε = 0.2``, 40 PGD
    iterations, ``T' = 5``, seed 0). The shipped ``metrics.json`` was measured when the zoo's ``t*`` was still 100
    and its ``T'`` 20 (its ``train_args`` say so); a retrain at the defaults measures at 200 and 5. The shipped
    ``reference.json`` was refitted at ``T' = 5`` with the same score bank (``scripts/score_steps_attack_study.py``;
    the same refit at 20 reproduces the old file exactly).

    Data: :func:`art_ssni.zoo.load_digits_split` with ``random_state=seed`` (1,347 train / 450 test images).
    The steps, in order:

    1. Diffusion: :func:`make_digits_unet` trained for ``unet_steps`` AdamW steps (batch ``unet_batch_size``,
       linear warm-up then cosine decay of ``unet_lr``, gradient clipping 1.0) on the ε-prediction MSE of the DDPM
       linear schedule (:func:`art_ssni.diffusion.default_scheduler`); the EMA weights (decay ``ema_decay``) are
       saved. No data augmentation.
    2. Classifier: :class:`~art_ssni.zoo.classifier.DigitsCNN`, ``classifier_epochs`` epochs of Adam.
    3. Reference statistics: :meth:`SSNIPreprocessor.fit` on the training split, or its first ``reference_size``
       images (``score_steps`` = T', seeded).
    4. ``zoo.json``: the defaults (``t_star``, ``eps``, ``pgd_iter``, ``score_steps``) and the split.
    5. Metrics (test split, or its first ``eval_size`` images): clean accuracy; undefended accuracy under ART
       ``ProjectedGradientDescent`` ℓ∞ (``pgd_iter`` iterations, step ε/8, no random start) for every ε in
       ``eps_grid`` and the default ``eps``; DiffPure (constant ``t*``, ancestral sampler) clean accuracy for every
       ``t*`` in ``t_star_grid`` and the default ``t_star``; DiffPure and SSNI-N accuracy on the undefended PGD
       examples at ``eps`` (a *transfer* check, not an adaptive attack); the UNet's held-out ε-MSE.
    6. ``metrics.json``: the metrics, the training record (loss curve, sizes, timings, library versions).

    :param out_dir: folder to write (created if needed; existing zoo files are overwritten).
    :param seed: seed of the split, of every random draw of the training and of the evaluation.
    :param progress: show tqdm progress bars.
    :return: the metrics dict written to ``out_dir/metrics.json``.
    """
    args: dict[str, Any] = {
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
        "t_star_grid": tuple(t_star_grid),
        "eps_grid": tuple(eps_grid),
        "eval_size": eval_size,
        "reference_size": reference_size,
    }
    _check_train_args(args)  # 0. nothing is written before every argument is valid
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    seed = int(seed)
    x_train, y_train, x_test, y_test = load_digits_split(seed=seed, test_size=DIGITS_TEST_SIZE)
    times: dict[str, float] = {}
    start = time.perf_counter()

    tic = time.perf_counter()  # 1. the diffusion model
    diffusion, losses = _train_unet(
        x_train, steps=unet_steps, batch_size=unet_batch_size, lr=unet_lr, ema_decay=ema_decay, seed=seed,
        progress=progress,
    )  # fmt: skip
    times["unet"] = time.perf_counter() - tic
    diffusion.save_pretrained(root)

    tic = time.perf_counter()  # 2. the classifier
    classifier = _train_classifier(
        x_train, y_train, epochs=classifier_epochs, batch_size=classifier_batch_size, lr=classifier_lr, seed=seed,
        progress=progress,
    )  # fmt: skip
    times["classifier"] = time.perf_counter() - tic
    save_classifier(classifier, root)

    tic = time.perf_counter()  # 3. the reference statistics
    reference = _fit_reference(diffusion, x_train, score_steps=score_steps, seed=seed, reference_size=reference_size)
    reference.to_json(root / ZOO_REFERENCE)
    times["reference"] = time.perf_counter() - tic

    config = _zoo_config(  # 4. the zoo's defaults and split
        t_star=t_star, eps=eps, pgd_iter=pgd_iter, score_steps=score_steps, seed=seed, n_train=x_train.shape[0],
        n_test=x_test.shape[0],
    )  # fmt: skip
    (root / ZOO_CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")

    tic = time.perf_counter()  # 5. the measurements
    n_eval = x_test.shape[0] if eval_size is None else min(int(eval_size), x_test.shape[0])
    metrics = evaluate_zoo(
        diffusion, classifier, x_test[:n_eval], y_test[:n_eval], t_star=int(t_star), eps=float(eps),
        pgd_iter=int(pgd_iter), reference=reference, score_steps=int(score_steps), t_star_grid=tuple(t_star_grid),
        eps_grid=tuple(eps_grid), seed=seed, progress=progress,
    )  # fmt: skip
    times["evaluation"] = time.perf_counter() - tic
    metrics["unet_test_loss_ema"] = ema_test_loss(diffusion, x_test[:n_eval], seed=seed)
    times["total"] = time.perf_counter() - start

    # 6. the record
    metrics.update(
        _training_record(args, diffusion=diffusion, classifier=classifier, losses=losses, reference=reference,
                         times=times)
    )  # fmt: skip
    (root / ZOO_METRICS).write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return metrics
