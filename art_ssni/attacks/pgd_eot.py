"""PGD with Expectation over Transformation (EOT), run to the end, each sample's iterate chosen over fresh draws."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from art.attacks.attack import EvasionAttack
from art.estimators.classification.classifier import ClassifierMixin
from art.estimators.estimator import BaseEstimator, LossGradientsMixin
from tqdm.auto import tqdm

from art_ssni._common import is_finite_real, is_int
from art_ssni.attacks._common import default_step, norm_name, project, random_start, step, to_labels
from art_ssni.attacks.requirements import Requires
from art_ssni.attacks.selection import BestIterate, judge

__all__ = ["EPS_STEP_RATIO", "PGDEOT"]

#: ``eps_step / eps`` of the default step at 10 iterations (:func:`~art_ssni.attacks._common.default_step`);
#: deprecated, kept for one release
EPS_STEP_RATIO = 0.25


class PGDEOT(EvasionAttack):
    """Projected gradient descent (ℓ∞ or ℓ2) on the EOT-averaged loss gradient of a randomized defence.

    Every iteration averages ``eot_iter`` calls of ``estimator.loss_gradient`` (each call draws fresh purification
    randomness; with an :class:`~art_ssni.SSNIPreprocessor` whose ``eot_samples = M`` each call already averages
    ``M`` purifications, so one iteration averages ``eot_iter · M`` purifications: ``eot_iter=20`` with
    ``eot_samples=1``, or ``eot_iter=1`` with ``eot_samples=20`` in one batched call, are the paper's EOT 20). The
    gradient flows as the preprocessor's ``gradient`` mode says (``"exact"``, ``"surrogate"``, ``"bpda"``; see
    :class:`~art_ssni.attacks.BPDAEOT`).

    Every sample is attacked for all ``max_iter`` iterations of every restart, also a sample that is misclassified
    at the start: one random prediction never freezes a sample. The returned iterate is chosen per sample by the
    selection criterion of :mod:`art_ssni.attacks.selection`: (1) the highest success rate over ``select_draws``
    fresh predictions (one batched ``predict`` on repeated rows), (2) ties to the higher EOT margin loss.
    Candidates are judged at checkpoints: every ``select_every`` iterations and always after the last one
    (``select_every=None``: ``ceil(max_iter / 10)``, so at most 10 judgings per restart, each costing
    ``select_draws`` forward purifications per sample -- about 1 % of the ``max_iter · eot_iter`` gradient
    evaluations at the paper's budget). The starting point is not a candidate (with ``max_iter=0`` it is returned).
    With ``num_random_init = R > 1`` the candidates of all ``R`` restarts compete.

    Hooks for subclasses (:class:`~art_ssni.attacks.BPDAEOT`, ``ScoreAwarePGD``, ...): :meth:`_setup` and
    :meth:`_teardown` around :meth:`generate`; :meth:`_gradient` (EOT gradient of the objective to maximise) and
    :meth:`_update` (step and projection) in the loop.

    Defaults are the SSNI paper's protocol (ℓ∞, ε = 8/255, step ε/4 ≈ 0.0078, 200 iterations, EOT 20, no random
    start) plus the selection over 8 draws.

    | Paper link (EOT): https://arxiv.org/abs/1802.00420 ; PGD: https://arxiv.org/abs/1706.06083

    Shape:
        - x: ``(N, C, H, W)`` in the estimator's ``clip_values``; y: ``(N,)`` labels or ``(N, nb_classes)`` one-hot
          (``None``: the estimator's predictions; required when ``targeted``).
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
    :param eps_step: step size, > 0 (ℓ∞: per pixel; ℓ2: length of the normalised gradient step); ``None``:
        ``eps · max(0.223, 2.5 / max_iter)`` (the one default rule, :attr:`step_size`).
    :param max_iter: PGD iterations per restart, >= 0.
    :param eot_iter: gradient samples averaged per iteration, >= 1.
    :param num_random_init: random starts in the ε-ball (as ART's ``ProjectedGradientDescent``); ``0``: one run
        from ``x``.
    :param targeted: move towards the labels ``y`` (targets) instead of away from them.
    :param select_draws: fresh predictions judging each candidate iterate, >= 1.
    :param select_every: iterations between judgings, >= 1 (the last iteration is always judged); ``None``:
        ``ceil(max_iter / 10)``.
    :param batch_size: samples attacked together, >= 1.
    :param seed: seed of the random starts (``None``: fresh entropy). The defence's randomness is its own.
    :param verbose: show a tqdm progress bar (it disables itself when the output is not a terminal).
    """

    attack_params = EvasionAttack.attack_params + [
        "norm",
        "eps",
        "eps_step",
        "max_iter",
        "eot_iter",
        "num_random_init",
        "targeted",
        "select_draws",
        "select_every",
        "batch_size",
        "seed",
        "verbose",
    ]
    _estimator_requirements: tuple[type, ...] = (BaseEstimator, LossGradientsMixin, ClassifierMixin)
    #: what the attack needs of the defence (see :mod:`art_ssni.attacks.requirements`): nothing
    defence_requirements: tuple[Requires, ...] = ()

    def __init__(
        self,
        estimator: Any,
        *,
        norm: int | float | str = "inf",
        eps: float = 8 / 255,
        eps_step: float | None = None,
        max_iter: int = 200,
        eot_iter: int = 20,
        num_random_init: int = 0,
        targeted: bool = False,
        select_draws: int = 8,
        select_every: int | None = None,
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
        self.num_random_init = num_random_init
        self._targeted = targeted
        self.select_draws = select_draws
        self.select_every = select_every
        self.batch_size = batch_size
        self.seed = seed
        self.verbose = verbose
        self._check_params()

    def _check_params(self) -> None:
        if norm_name(self.norm) is None:
            raise ValueError(f'norm must be "inf" (np.inf, "Linf") or 2 ("L2"), got {self.norm!r}.')
        if not is_finite_real(self.eps) or self.eps <= 0:
            raise ValueError(f"eps must be a finite number > 0, got {self.eps!r}.")
        if self.eps_step is not None and (not is_finite_real(self.eps_step) or self.eps_step <= 0):
            raise ValueError(f"eps_step must be a finite number > 0 or None, got {self.eps_step!r}.")
        if not is_int(self.max_iter) or self.max_iter < 0:
            raise ValueError(f"max_iter must be an int >= 0, got {self.max_iter!r}.")
        if not is_int(self.eot_iter) or self.eot_iter < 1:
            raise ValueError(f"eot_iter must be an int >= 1, got {self.eot_iter!r}.")
        if not is_int(self.num_random_init) or self.num_random_init < 0:
            raise ValueError(f"num_random_init must be an int >= 0, got {self.num_random_init!r}.")
        if not isinstance(self.targeted, bool):
            raise ValueError(f"targeted must be a bool, got {self.targeted!r}.")
        if not is_int(self.select_draws) or self.select_draws < 1:
            raise ValueError(f"select_draws must be an int >= 1, got {self.select_draws!r}.")
        if self.select_every is not None and (not is_int(self.select_every) or self.select_every < 1):
            raise ValueError(f"select_every must be an int >= 1 or None, got {self.select_every!r}.")
        if not is_int(self.batch_size) or self.batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {self.batch_size!r}.")
        if self.seed is not None and (not is_int(self.seed) or self.seed < 0):
            raise ValueError(f"seed must be an int >= 0 or None, got {self.seed!r}.")
        if not isinstance(self.verbose, bool):
            raise ValueError(f"verbose must be a bool, got {self.verbose!r}.")
        if getattr(self.estimator, "clip_values", None) is None:
            raise ValueError(f"estimator: {type(self).__name__} needs an estimator with clip_values.")

    # ------------------------------------------------------------------ resolved settings
    @property
    def step_size(self) -> float:
        """The step in use: ``eps_step``, or when it is ``None`` the one default rule
        ``eps · max(0.223, 2.5 / max_iter)`` (:func:`~art_ssni.attacks._common.default_step`; ``eps / 4`` at 10
        iterations, the SSNI paper's 0.007 at ``eps = 8/255`` and 200 iterations)."""
        return float(self.eps_step) if self.eps_step is not None else default_step(self.eps, self.max_iter)

    def checkpoints(self) -> list[int]:
        """0-based iterations after which the candidates are judged (always the last one)."""
        n = int(self.max_iter)
        every = int(self.select_every) if self.select_every is not None else max(1, math.ceil(n / 10))
        return sorted({k for k in range(every - 1, n, every)} | ({n - 1} if n > 0 else set()))

    # ------------------------------------------------------------------ hooks for subclasses
    def _setup(self) -> None:
        """Called once at the start of :meth:`generate` (subclasses set up their state here)."""

    def _teardown(self) -> None:
        """Called once at the end of :meth:`generate`, also when it raises."""

    def _gradient(self, x: np.ndarray, y_one_hot: np.ndarray, iteration: int) -> np.ndarray:
        """EOT gradient of the objective to *maximise* at ``x``: the mean of ``eot_iter`` estimates.

        Untargeted: the loss at the true labels; targeted: minus the loss at the targets.

        :param x: ``(B, C, H, W)`` current iterates.
        :param y_one_hot: ``(B, nb_classes)`` true (or target) labels.
        :param iteration: 0-based iteration of the current restart.
        :return: ``(B, C, H, W)`` gradient.
        """
        grad = np.zeros_like(x)
        for _ in range(self.eot_iter):
            grad += self.estimator.loss_gradient(x, y_one_hot)
        return (-grad if self.targeted else grad) / self.eot_iter

    def _update(self, x_adv: np.ndarray, grad: np.ndarray, x0: np.ndarray) -> np.ndarray:
        """One ascent step along ``grad``, projected onto the ε-ball around ``x0`` and into ``clip_values``.

        :param x_adv: ``(B, C, H, W)`` current iterates; ``grad``: their gradient; ``x0``: the clean inputs.
        :return: ``(B, C, H, W)`` new iterates (a new array).
        """
        norm = norm_name(self.norm)
        assert norm is not None
        lo, hi = (float(v) for v in self.estimator.clip_values)
        return project(x_adv + step(grad, norm, self.step_size), x0, norm, float(self.eps), (lo, hi))

    # ------------------------------------------------------------------ attack
    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs: Any) -> np.ndarray:
        """Adversarial examples for ``x`` (never modified); see the class docstring for shapes.

        :param x: ``(N, C, H, W)`` inputs in ``clip_values``.
        :param y: true labels (targeted: target labels), ``(N,)`` or one-hot ``(N, nb_classes)``; ``None`` uses
            the defended predictions (not allowed when ``targeted``).
        :return: ``(N, C, H, W)`` float32 adversarial examples.
        """
        self._check_params()
        if not isinstance(x, np.ndarray) or x.ndim < 2 or x.shape[0] == 0:
            raise ValueError(f"x must be a non-empty (N, ...) array, got shape {getattr(x, 'shape', None)}.")
        x = np.asarray(x, dtype=np.float32)
        nb_classes = int(self.estimator.nb_classes)
        if y is None:
            if self.targeted:
                raise ValueError("y: a targeted attack needs the target labels, got None.")
            labels = np.argmax(self.estimator.predict(x, batch_size=self.batch_size), axis=1)
        else:
            labels = to_labels(y, nb_classes)
            if labels.shape[0] != x.shape[0]:
                raise ValueError(f"y must have {x.shape[0]} labels (one per sample of x), got {labels.shape[0]}.")
        one_hot = np.eye(nb_classes, dtype=np.float32)[labels]
        rng = np.random.default_rng(self.seed)
        out = np.empty_like(x)
        restarts = max(1, int(self.num_random_init))
        n_batches = math.ceil(x.shape[0] / self.batch_size)
        self._setup()
        try:
            total = n_batches * restarts * int(self.max_iter)
            with tqdm(total=total, desc=type(self).__name__, disable=None if self.verbose else True) as bar:
                for start in range(0, x.shape[0], self.batch_size):
                    sl = slice(start, start + self.batch_size)
                    out[sl] = self._attack_batch(x[sl], labels[sl], one_hot[sl], rng, bar)
        finally:
            self._teardown()
        return out

    def _attack_batch(
        self, x0: np.ndarray, labels: np.ndarray, one_hot: np.ndarray, rng: np.random.Generator, bar: Any
    ) -> np.ndarray:
        norm = norm_name(self.norm)
        assert norm is not None
        eps = float(self.eps)
        lo, hi = (float(v) for v in self.estimator.clip_values)
        judged = set(self.checkpoints())
        best: BestIterate | None = None
        for _ in range(max(1, int(self.num_random_init))):
            x_adv = x0.copy()
            if self.num_random_init > 0:
                x_adv = project(random_start(x0, norm, eps, rng), x0, norm, eps, (lo, hi))
            if best is None:
                best = BestIterate(x_adv)  # returned as is only when max_iter == 0
            for iteration in range(int(self.max_iter)):
                x_adv = self._update(x_adv, self._gradient(x_adv, one_hot, iteration), x0)
                if iteration in judged:
                    rate, loss = judge(
                        self.estimator,
                        x_adv,
                        labels,
                        draws=int(self.select_draws),
                        batch_size=int(self.batch_size),
                        targeted=self.targeted,
                    )
                    best.offer(x_adv, rate, loss)
                bar.update(1)
        assert best is not None
        return best.x
