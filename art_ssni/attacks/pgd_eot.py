"""PGD with Expectation over Transformation (EOT) and early per-sample bookkeeping."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from art.attacks.attack import EvasionAttack
from art.estimators.classification.classifier import ClassifierMixin
from art.estimators.estimator import BaseEstimator, LossGradientsMixin
from tqdm.auto import tqdm

from art_ssni.attacks._common import norm_name, project, random_start, step, to_labels

__all__ = ["PGDEOT"]


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


class PGDEOT(EvasionAttack):
    """Projected gradient descent (untargeted, ℓ∞ or ℓ2) on the EOT-averaged loss gradient of a randomized defence.

    Every iteration averages ``eot_iter`` calls of ``estimator.loss_gradient`` (each call draws fresh purification
    randomness; with an :class:`~art_ssni.SSNIPreprocessor` whose ``eot_samples = M`` each call already averages
    ``M`` purifications, so one iteration averages ``eot_iter · M`` purifications: ``eot_iter=20`` with
    ``eot_samples=1``, or ``eot_iter=1`` with ``eot_samples=20`` in one batched call, are the paper's EOT 20). The
    gradient flows as the preprocessor's ``gradient`` mode says (``"exact"``, ``"surrogate"``, ``"bpda"``; see
    :class:`~art_ssni.attacks.BPDAEOT`).

    Early bookkeeping: after every step the defended classifier predicts the new iterate once, with fresh
    randomness; a sample whose prediction is wrong keeps that iterate as its result and is not attacked further.
    Samples never fooled return their last iterate. (A sample misclassified before the attack returns its input.)

    Defaults are the SSNI paper's protocol (ℓ∞, ε = 8/255, step 0.007, 200 iterations, EOT 20, no random start).

    Shape:
        - x: ``(N, C, H, W)`` in the estimator's ``clip_values``; y: ``(N,)`` labels or ``(N, nb_classes)`` one-hot
          (``None``: the estimator's predictions).
        - output: ``(N, C, H, W)`` float32, ``||x_adv - x|| <= eps`` in the chosen norm, inside ``clip_values``.

    Examples::

        >>> pre = SSNIPreprocessor(model, reweight="sigmoid", reference=ref, checkpoint=True, eot_samples=20)
        >>> clf = PyTorchClassifier(cnn, loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 8, 8), nb_classes=10,
        ...                         clip_values=(0.0, 1.0), preprocessing_defences=[pre])
        >>> x_adv = PGDEOT(clf, eps=0.1, eot_iter=1).generate(x, y)

    :param estimator: an ART classifier with loss gradients (typically a ``PyTorchClassifier`` with the defence in
        ``preprocessing_defences``) and ``clip_values``.
    :param norm: ``"inf"`` (or ``np.inf``) or ``2``.
    :param eps: radius of the perturbation ball, > 0.
    :param eps_step: step size, > 0 (ℓ∞: per pixel; ℓ2: length of the normalised gradient step).
    :param max_iter: number of PGD iterations, >= 0.
    :param eot_iter: gradient samples averaged per iteration, >= 1.
    :param random_init: start from a uniform random point of the ε-ball instead of ``x``.
    :param batch_size: samples attacked together, >= 1.
    :param seed: seed of the random start (``None``: fresh entropy). The defence's randomness is its own.
    :param verbose: show a tqdm progress bar.
    """

    attack_params = EvasionAttack.attack_params + [
        "norm",
        "eps",
        "eps_step",
        "max_iter",
        "eot_iter",
        "random_init",
        "batch_size",
        "seed",
        "verbose",
    ]
    _estimator_requirements: tuple[type, ...] = (BaseEstimator, LossGradientsMixin, ClassifierMixin)

    def __init__(
        self,
        estimator: Any,
        *,
        norm: int | float | str = "inf",
        eps: float = 8 / 255,
        eps_step: float = 0.007,
        max_iter: int = 200,
        eot_iter: int = 20,
        random_init: bool = False,
        batch_size: int = 32,
        seed: int | None = None,
        verbose: bool = True,
    ) -> None:
        super().__init__(estimator=estimator)
        self.norm = norm
        self.eps = eps
        self.eps_step = eps_step
        self.max_iter = max_iter
        self.eot_iter = eot_iter
        self.random_init = random_init
        self.batch_size = batch_size
        self.seed = seed
        self.verbose = verbose
        self._check_params()

    def _check_params(self) -> None:
        if norm_name(self.norm) is None:
            raise ValueError(f'norm must be "inf" (or np.inf) or 2, got {self.norm!r}.')
        if not _is_number(self.eps) or not math.isfinite(self.eps) or self.eps <= 0:
            raise ValueError(f"eps must be a finite number > 0, got {self.eps!r}.")
        if not _is_number(self.eps_step) or not math.isfinite(self.eps_step) or self.eps_step <= 0:
            raise ValueError(f"eps_step must be a finite number > 0, got {self.eps_step!r}.")
        if not _is_int(self.max_iter) or self.max_iter < 0:
            raise ValueError(f"max_iter must be an int >= 0, got {self.max_iter!r}.")
        if not _is_int(self.eot_iter) or self.eot_iter < 1:
            raise ValueError(f"eot_iter must be an int >= 1, got {self.eot_iter!r}.")
        if not isinstance(self.random_init, bool):
            raise ValueError(f"random_init must be a bool, got {self.random_init!r}.")
        if not _is_int(self.batch_size) or self.batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {self.batch_size!r}.")
        if self.seed is not None and (not _is_int(self.seed) or self.seed < 0):
            raise ValueError(f"seed must be an int >= 0 or None, got {self.seed!r}.")
        if not isinstance(self.verbose, bool):
            raise ValueError(f"verbose must be a bool, got {self.verbose!r}.")
        if getattr(self.estimator, "clip_values", None) is None:
            raise ValueError("estimator: PGDEOT needs an estimator with clip_values.")

    # ------------------------------------------------------------------ hooks for subclasses
    def _setup(self) -> None:
        """Called once at the start of :meth:`generate` (subclasses set up their state here)."""

    def _teardown(self) -> None:
        """Called once at the end of :meth:`generate`, also when it raises."""

    def _gradient(self, x: np.ndarray, y_one_hot: np.ndarray, iteration: int) -> np.ndarray:
        """EOT gradient of the loss to *maximise* at ``x`` (``(B, C, H, W)``): mean of ``eot_iter`` estimates."""
        grad = np.zeros_like(x)
        for _ in range(self.eot_iter):
            grad += self.estimator.loss_gradient(x, y_one_hot)
        return grad / self.eot_iter

    # ------------------------------------------------------------------ attack
    def _fooled(self, x: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """One defended prediction with fresh randomness: ``True`` where it is wrong."""
        return np.argmax(self.estimator.predict(x, batch_size=self.batch_size), axis=1) != labels

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs: Any) -> np.ndarray:
        """Adversarial examples for ``x`` (never modified); see the class docstring for shapes.

        :param x: ``(N, C, H, W)`` inputs in ``clip_values``.
        :param y: true labels, ``(N,)`` or one-hot ``(N, nb_classes)``; ``None`` uses the defended predictions.
        :return: ``(N, C, H, W)`` float32 adversarial examples.
        """
        if not isinstance(x, np.ndarray) or x.ndim < 2 or x.shape[0] == 0:
            raise ValueError(f"x must be a non-empty (N, ...) array, got shape {getattr(x, 'shape', None)}.")
        x = np.asarray(x, dtype=np.float32)
        nb_classes = int(self.estimator.nb_classes)
        if y is None:
            labels = np.argmax(self.estimator.predict(x, batch_size=self.batch_size), axis=1)
        else:
            labels = to_labels(y, nb_classes)
            if labels.shape[0] != x.shape[0]:
                raise ValueError(f"y must have {x.shape[0]} labels (one per sample of x), got {labels.shape[0]}.")
        one_hot = np.eye(nb_classes, dtype=np.float32)[labels]
        norm = norm_name(self.norm)
        if norm is None:  # _check_params refuses it at construction; set_params could still change it
            raise ValueError(f"norm must be 'inf' or 2, got {self.norm!r}.")
        clip = (float(self.estimator.clip_values[0]), float(self.estimator.clip_values[1]))
        rng = np.random.default_rng(self.seed)
        out = np.empty_like(x)
        n_batches = math.ceil(x.shape[0] / self.batch_size)
        self._setup()
        try:
            with tqdm(total=n_batches * self.max_iter, desc=type(self).__name__, disable=not self.verbose) as bar:
                for start in range(0, x.shape[0], self.batch_size):
                    sl = slice(start, start + self.batch_size)
                    out[sl] = self._attack_batch(x[sl], labels[sl], one_hot[sl], norm, clip, rng, bar)
        finally:
            self._teardown()
        return out

    def _attack_batch(
        self,
        x0: np.ndarray,
        labels: np.ndarray,
        one_hot: np.ndarray,
        norm: str | int,
        clip: tuple[float, float],
        rng: np.random.Generator,
        bar: Any,
    ) -> np.ndarray:
        eps = float(self.eps)
        x_adv = x0.copy()
        if self.random_init:
            x_adv = project(random_start(x0, norm, eps, rng), x0, norm, eps, clip)
        best = x_adv.copy()
        done = self._fooled(x_adv, labels)  # early bookkeeping: a fooled sample keeps its iterate
        for iteration in range(self.max_iter):
            active = np.flatnonzero(~done)
            if active.size == 0:
                bar.update(self.max_iter - iteration)
                break
            grad = self._gradient(x_adv[active], one_hot[active], iteration)
            moved = x_adv[active] + step(grad, norm, float(self.eps_step))
            x_adv[active] = project(moved, x0[active], norm, eps, clip)
            fooled = self._fooled(x_adv[active], labels[active])
            best[active[fooled]] = x_adv[active[fooled]]
            done[active[fooled]] = True
            bar.update(1)
        best[~done] = x_adv[~done]
        return best
