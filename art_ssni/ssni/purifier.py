"""Layer 2: :class:`SSNIPurifier`, the whole SSNI pipeline as one pure-torch module (no ART).

Everything here works in **model space** ``[-1, 1]`` (the layer convention of :mod:`art_ssni.diffusion`), on the
model's device and dtype; the ART face (:class:`art_ssni.SSNIPreprocessor`) converts from its ``clip_values``,
validates, batches, chooses the gradient mode and expands EOT copies. Attacks, the leaderboard and RobustBench call
this module; nobody rebuilds its steps.

The forward reads (Sun et al. 2025, §4):

(1) score:    ``σ_i = ||mean_k s(x_i, t_k)||_2`` over the ``T'`` smallest timesteps (:func:`art_ssni.ssni.score_norms`);
(2) reweight: ``t_i = round(r(σ_i))`` with the reference statistics (:func:`~art_ssni.ssni.select_levels`);
(3) noise:    ``x_{t_i} = sqrt(ᾱ_{t_i}) x_i + sqrt(1 - ᾱ_{t_i}) z_i``;
(4) reverse:  the base (:class:`~art_ssni.ssni.bases.DiffPure`, ``GNS``, ``GDMP``) denoises each sample to 0.

Randomness contract of the score (issue 15). ``score_noise="fixed"`` (default): one bank ``z`` of shape
``(T', C, H, W)`` is drawn once from ``score_seed`` (on the CPU, so it is the same on every device) and used by
:meth:`fit` and by every call: ``σ(x)`` and ``t(x)`` are deterministic functions of ``x``, identical alone or in any
batch, in any call order, on every run. ``score_noise="random"`` (the authors' behaviour): every sample of every call
draws its own ``(T', C, H, W)`` noise from the purifier's own score generator (seeded by ``score_seed``), and
:meth:`fit` averages ``fit_draws`` draws per image so that the reference does not carry one draw's offset. In both
modes scoring never touches the purification stream (the ``generator`` passed to :meth:`forward`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np
import torch

from art_ssni._common import is_finite_real, is_int, is_real
from art_ssni.diffusion.model import DiffusionModel
from art_ssni.diffusion.sampling import SAMPLERS, straight_through_noise
from art_ssni.ssni.bases import Base, DiffPure, make_base
from art_ssni.ssni.presets import paper_defaults
from art_ssni.ssni.reference import ReferenceStats
from art_ssni.ssni.reweight import REWEIGHTS, preactivation, resolve_tau, select_levels
from art_ssni.ssni.score import score_norms

__all__ = ["SCORE_NOISE", "LevelRecord", "PurifierSetting", "SSNIPurifier", "derive_score_seed"]

SCORE_NOISE = ("fixed", "random")
_V = TypeVar("_V")


def derive_score_seed(seed: int | None) -> int:
    """The default ``score_seed``: 0 without a ``seed``, else a number derived from ``seed`` by numpy's
    ``SeedSequence`` (so the score bank is not the first draws of a purification stream seeded with ``seed``)."""
    if seed is None:
        return 0
    return int(np.random.SeedSequence([int(seed), 0x55_4E_49]).generate_state(1)[0])


@dataclass
class LevelRecord:
    """The levels an :class:`SSNIPurifier` chose inside a :meth:`SSNIPurifier.record_levels` block, in call order.

    :param chunks: one ``(B_k,)`` long CPU tensor per :meth:`~SSNIPurifier.levels` call (or forward with given
        ``t``) made inside the block.
    """

    chunks: list[torch.Tensor] = field(default_factory=list)

    @property
    def levels(self) -> np.ndarray:
        """All recorded levels, concatenated in call order: numpy ``(sum_k B_k,)`` int64 (empty when none)."""
        if not self.chunks:
            return np.zeros(0, dtype=np.int64)
        return torch.cat(self.chunks).numpy().astype(np.int64)


class SSNIPurifier(torch.nn.Module):
    """Sample-Specific Noise Injection purification (Sun et al., ICML 2025, https://arxiv.org/abs/2410.16311).

    :param model: the :class:`~art_ssni.diffusion.DiffusionModel` that both scores and purifies.
    :param reweight: ``"sigmoid"`` (SSNI-N), ``"linear"`` (SSNI-L) or ``"constant"`` (the base at ``t_star``).
    :param t_star: the base method's noise level ``t*`` in ``[1, N - 1]``; ``None``: the paper's value for the
        model's resolution (:func:`~art_ssni.ssni.presets.paper_defaults`: 100 below 128 px, as CIFAR-10; 150 from
        128 px, as ImageNet).
    :param bias: ``b >= 0`` of the reweighting (paper: 5).
    :param tau: SSNI-N temperature ``τ > 0``; ``None`` uses the std of the reference score norms.
    :param reference: :class:`~art_ssni.ssni.ReferenceStats` of clean score norms (or call :meth:`fit`).
    :param score_steps: ``T'``, timesteps averaged in the score; ``None``: the ``T'`` the ``reference`` was fitted
        with, else the paper's value for the model's resolution (20 as CIFAR-10, 50 as ImageNet).
    :param score_noise: ``"fixed"`` (one noise bank from ``score_seed``) or ``"random"`` (see the module docstring).
    :param score_seed: seed of the score noise (``>= 0``), independent of any purification seed.
    :param fit_draws: draws per image :meth:`fit` averages with ``score_noise="random"`` (``>= 1``).
    :param base: a base object (``DiffPure()``, ``GNS(stages=...)``, ``GDMP(...)``) or its name.
    :param sampler: ``"ddpm"`` (ancestral, ``t_i`` steps) or ``"ddim"`` (``min(steps, t_i)`` steps).
    :param steps: DDIM steps (required for ``"ddim"``, ``None`` for ``"ddpm"``).
    :param eta: DDIM η in ``[0, 1]``.
    :param checkpoint: checkpoint each reverse step (backward memory independent of the number of steps).
    :param batch_size: at most this many rows per UNet call of the score (``B · T'`` rows in all); ``None``: one.

    Shape:
        - x: ``(B, C, H, W)`` in model space ``[-1, 1]``, of the model's dtype and device.
        - output: ``(B, C, H, W)`` purified, model space.

    The levels actually used. Every :meth:`levels` / :meth:`levels_from_norms` call (and so every :meth:`forward`)
    stores what it returned in :attr:`last_levels` (``(B,)`` long, detached, CPU); a :meth:`forward` with given
    ``t`` stores ``t``. :meth:`record_levels` collects them over many calls (e.g. an ART ``predict`` that runs the
    preprocessor batch by batch). With ``score_noise="random"`` re-scoring an input gives other levels: read these.

    A reverse process that produces NaN or inf raises ``FloatingPointError`` (:meth:`purify`): a defence never
    hands a non-finite image to the classifier.

    Examples::

        >>> purifier = SSNIPurifier(model, reweight="sigmoid", t_star=100, base=GNS(stages=(30, 50))).fit(x_clean)
        >>> t = purifier.levels(x)                       # (B,) long
        >>> out = purifier(x, generator=torch.Generator().manual_seed(0))
        >>> purifier.last_levels                         # (B,) the levels that purified ``out``
        >>> with purifier.record_levels() as record:
        ...     classifier.predict(x_numpy)              # any number of calls
        >>> record.levels                                # numpy (N,) int64, in call order
    """

    #: the settings the ART face exposes as its own parameters
    SETTINGS: ClassVar[tuple[str, ...]] = (
        "model", "reweight", "t_star", "bias", "tau", "reference", "score_steps", "score_noise", "score_seed",
        "base", "sampler", "steps", "eta", "checkpoint", "batch_size",
    )  # fmt: skip

    def __init__(
        self,
        model: DiffusionModel,
        *,
        reweight: str = "sigmoid",
        t_star: int | None = None,
        bias: float = 5.0,
        tau: float | None = None,
        reference: ReferenceStats | None = None,
        score_steps: int | None = None,
        score_noise: str = "fixed",
        score_seed: int = 0,
        fit_draws: int = 8,
        base: Base | str = "diffpure",
        sampler: str = "ddpm",
        steps: int | None = None,
        eta: float = 1.0,
        checkpoint: bool = False,
        batch_size: int | None = None,
    ) -> None:
        super().__init__()
        #: score repeated rows once (fixed bank only; a switch for the benchmark that measures the saving)
        self._score_distinct_only = True
        ref_steps: Any = getattr(reference, "score_steps", None)
        if score_steps is None and is_int(ref_steps):
            score_steps = int(ref_steps)  # the T' the reference was fitted with
        if isinstance(model, DiffusionModel) and (t_star is None or score_steps is None):
            preset = paper_defaults(model)  # a 256 x 256 model never silently gets CIFAR-10's values
            t_star = preset["t_star"] if t_star is None else t_star
            score_steps = preset["score_steps"] if score_steps is None else score_steps
        self.model = model
        self.reweight, self.t_star, self.bias, self.tau, self.reference = reweight, t_star, bias, tau, reference
        self.score_steps, self.score_noise, self.score_seed, self.fit_draws = (
            score_steps,
            score_noise,
            score_seed,
            fit_draws,
        )
        self.base: Base = DiffPure()
        self.base = make_base(base)
        self.sampler, self.steps, self.eta, self.checkpoint, self.batch_size = (
            sampler,
            steps,
            eta,
            checkpoint,
            batch_size,
        )
        self.check_params()
        self._banks: dict[tuple[int, int, str], torch.Tensor] = {}
        #: ``(B,)`` long CPU tensor: the levels of the last :meth:`levels` call or :meth:`forward` (``None`` before)
        self.last_levels: torch.Tensor | None = None
        self._records: list[LevelRecord] = []
        self._score_generator = torch.Generator()
        self.reset_score_generator()

    # ------------------------------------------------------------------ settings
    def check_params(self) -> None:
        """Validate every setting (``ValueError`` / ``TypeError`` naming it); a base given by name becomes an object."""
        if not isinstance(self.model, DiffusionModel):
            raise TypeError(f"model must be an art_ssni.DiffusionModel, got {type(self.model).__name__}.")
        n = self.model.num_timesteps
        if self.reweight not in REWEIGHTS:
            raise ValueError(f"reweight must be one of {sorted(REWEIGHTS)}, got {self.reweight!r}.")
        if not is_int(self.t_star) or not 1 <= self.t_star <= n - 1:
            raise ValueError(f"t_star must be an int in [1, {n - 1}], got {self.t_star!r}.")
        if not is_finite_real(self.bias) or self.bias < 0:
            raise ValueError(f"bias must be a finite number >= 0, got {self.bias!r}.")
        if self.tau is not None and (not is_finite_real(self.tau) or self.tau <= 0):
            raise ValueError(f"tau must be a finite number > 0 or None, got {self.tau!r}.")
        if not is_int(self.score_steps) or not 1 <= self.score_steps <= n:
            raise ValueError(f"score_steps must be an int in [1, {n}], got {self.score_steps!r}.")
        if self.score_noise not in SCORE_NOISE:
            raise ValueError(f"score_noise must be one of {list(SCORE_NOISE)}, got {self.score_noise!r}.")
        if not is_int(self.score_seed) or self.score_seed < 0:
            raise ValueError(f"score_seed must be an int >= 0, got {self.score_seed!r}.")
        if not is_int(self.fit_draws) or self.fit_draws < 1:
            raise ValueError(f"fit_draws must be an int >= 1, got {self.fit_draws!r}.")
        if self.reference is not None:
            if not isinstance(self.reference, ReferenceStats):
                raise TypeError(f"reference must be a ReferenceStats or None, got {type(self.reference).__name__}.")
            if self.reference.score_steps is not None and self.reference.score_steps != self.score_steps:
                raise ValueError(
                    f"reference was computed with score_steps={self.reference.score_steps}, but score_steps="
                    f"{self.score_steps}: score norms with different T' are not comparable."
                )
            ref_seed = self.reference.score_seed
            if self.score_noise == "fixed" and self.reference.score_noise == "fixed" and ref_seed != self.score_seed:
                raise ValueError(
                    f"score_seed: the reference was fitted with the fixed score-noise bank of score_seed={ref_seed}, "
                    f"but score_seed={self.score_seed}; pass score_seed={ref_seed} or fit again."
                )
            if self.reweight == "sigmoid":
                resolve_tau(self.reference, self.tau)
            if self.reweight == "linear" and self.reference.max <= self.reference.min:
                raise ValueError("reference: reweight='linear' needs reference.max > reference.min.")
        self.base = make_base(self.base)
        self.base.check_levels(n)
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {list(SAMPLERS)}, got {self.sampler!r}.")
        if self.sampler == "ddim" and (self.steps is None or not is_int(self.steps) or self.steps < 1):
            raise ValueError(f"steps must be an int >= 1 when sampler='ddim', got {self.steps!r}.")
        if self.sampler == "ddpm" and self.steps is not None:
            raise ValueError(f"steps must be None when sampler='ddpm' (one step per level), got {self.steps!r}.")
        if not is_real(self.eta) or not 0.0 <= self.eta <= 1.0:
            raise ValueError(f"eta must be a number in [0, 1], got {self.eta!r}.")
        if not isinstance(self.checkpoint, bool):
            raise ValueError(f"checkpoint must be a bool, got {self.checkpoint!r}.")
        if self.batch_size is not None and (not is_int(self.batch_size) or self.batch_size < 1):
            raise ValueError(f"batch_size must be an int >= 1, got {self.batch_size!r}.")

    @property
    def selects_per_sample(self) -> bool:
        """``True`` when the level depends on the sample (``reweight != "constant"``): it then needs a reference."""
        return self.reweight != "constant"

    @property
    def is_fitted(self) -> bool:
        """``True`` when the purifier can run: reference statistics are set, or ``reweight="constant"``."""
        return not self.selects_per_sample or self.reference is not None

    def reset_score_generator(self) -> None:
        """Restart the ``score_noise="random"`` stream from ``score_seed`` (the fixed bank never changes)."""
        self._score_generator.manual_seed(int(self.score_seed))

    # ------------------------------------------------------------------ (1) score
    def noise_bank(self) -> torch.Tensor:
        """The ``(T', C, H, W)`` float32 bank of ``score_noise="fixed"`` on the model's device (cached)."""
        m = self.model
        key = (int(self.score_seed), int(self.score_steps), str(m.device))
        if key not in self._banks:
            g = torch.Generator().manual_seed(int(self.score_seed))
            shape = (int(self.score_steps), m.in_channels, m.sample_size, m.sample_size)
            self._banks = {key: torch.randn(shape, generator=g).to(m.device)}
        return self._banks[key]

    def score_norms(self, x: torch.Tensor) -> torch.Tensor:
        """``(B,)`` score norms σ of model-space ``x``, with the noise of ``score_noise``; differentiable in ``x``
        when gradients are enabled. Costs ``B · T'`` UNet rows, in calls of at most ``batch_size`` rows.

        With the fixed bank a norm depends on the input alone, so repeated rows (the copies a judging or an EOT
        call stacks) are scored once: ``U · T'`` rows for ``U`` distinct inputs, the same values and gradients.
        """
        if self.score_noise == "fixed" and self._score_distinct_only and x.shape[0] > 1:
            flat = x.detach().reshape(x.shape[0], -1)
            distinct, inverse = torch.unique(flat, dim=0, return_inverse=True)
            if distinct.shape[0] < x.shape[0]:
                rows = torch.arange(x.shape[0], device=x.device)
                first = torch.full((distinct.shape[0],), x.shape[0], dtype=torch.long, device=x.device)
                first = first.scatter_reduce(0, inverse, rows, reduce="amin")
                return self._score_rows(x[first])[inverse]
        return self._score_rows(x)

    def _score_rows(self, x: torch.Tensor) -> torch.Tensor:
        k = int(self.score_steps)
        size = x.shape[0] if self.batch_size is None else int(self.batch_size)  # images per noised copy (B_c · T' rows)
        out = []
        for i in range(0, x.shape[0], size):
            xc = x[i : i + size]
            if self.score_noise == "fixed":
                noise = self.noise_bank()
            else:  # one independent (T', C, H, W) draw per sample, from the score stream only
                noise = torch.randn((xc.shape[0], k, *xc.shape[1:]), generator=self._score_generator).to(xc.device)
            out.append(score_norms(self.model, xc, score_steps=k, noise=noise, batch_size=self.batch_size))
        return torch.cat(out)

    # ------------------------------------------------------------------ (2) reweight
    def levels(self, x: torch.Tensor, *, straight_through: bool = False) -> torch.Tensor:
        """Per-sample noise levels ``t_i`` of model-space ``x`` (``(B, C, H, W)``).

        :param straight_through: return a float ``(B,)`` tensor whose value is the rounded level and whose gradient
            flows through the continuous reweighting and the score norms (for attacks on the selection); otherwise
            a ``(B,)`` long tensor computed without gradient.
        """
        b = x.shape[0]
        if not self.selects_per_sample:
            dtype = torch.float32 if straight_through else torch.long
            return self._remember(torch.full((b,), int(self.t_star), dtype=dtype, device=x.device))
        if self.reference is None:
            raise ValueError(
                f"reference: reweight={self.reweight!r} is not fitted; call fit(x_clean) or pass "
                "reference=ReferenceStats(...)."
            )
        with torch.set_grad_enabled(straight_through and torch.is_grad_enabled()):
            norms = self.score_norms(x)
        return self.levels_from_norms(norms, straight_through=straight_through)

    def levels_from_norms(self, norms: torch.Tensor, *, straight_through: bool = False) -> torch.Tensor:
        """(2) the reweighting alone: ``(B,)`` score norms -> ``(B,)`` levels (as :meth:`levels`).

        With ``straight_through=True`` the float levels carry the gradient of the continuous reweighting (see
        :func:`~art_ssni.ssni.select_levels`); pass them to :meth:`purify` / :meth:`forward` as ``t``."""
        if not self.selects_per_sample:
            dtype = norms.dtype if straight_through else torch.long
            return self._remember(torch.full(norms.shape, int(self.t_star), dtype=dtype, device=norms.device))
        return self._remember(self._select(norms, straight_through=straight_through))

    def _select(self, norms: torch.Tensor, *, straight_through: bool) -> torch.Tensor:
        return select_levels(
            norms,
            self.reference,
            reweight=self.reweight,
            t_star=int(self.t_star),
            bias=float(self.bias),
            tau=self.tau,
            num_timesteps=self.model.num_timesteps,
            straight_through=straight_through,
        )

    def preactivation(self, norms: torch.Tensor) -> torch.Tensor:
        """``(B,)`` pre-activation of the reweighting (:func:`art_ssni.ssni.reweight.preactivation`) with this
        purifier's reference, ``tau`` and ``reweight``; differentiable in ``norms``. Attacks on the selection use it
        as the score term in the reweighting's natural units."""
        if not self.selects_per_sample:
            raise ValueError("reweight: 'constant' has no pre-activation (the level does not depend on the score).")
        if self.reference is None:
            raise ValueError(f"reference: reweight={self.reweight!r} is not fitted; call fit(x_clean) first.")
        return preactivation(norms, self.reference, reweight=self.reweight, tau=self.tau)

    # ------------------------------------------------------------------ the levels actually used
    def _remember(self, t: torch.Tensor) -> torch.Tensor:
        """Store ``t`` as :attr:`last_levels` (and in every open :meth:`record_levels` block); returns ``t``."""
        used = t.detach().round().long().cpu() if t.is_floating_point() else t.detach().long().cpu()
        self.last_levels = used
        for record in self._records:
            record.chunks.append(used)
        return t

    @contextmanager
    def record_levels(self) -> Iterator[LevelRecord]:
        """Collect the levels of every :meth:`levels` call (hence every forward) made inside the block.

        >>> with purifier.record_levels() as record:
        ...     pre(x)                  # the ART face calls purifier.levels once per forward
        >>> record.levels               # numpy (N,) int64
        """
        record = LevelRecord()
        self._records.append(record)
        try:
            yield record
        finally:
            self._records.remove(record)

    def fit(self, x: torch.Tensor) -> SSNIPurifier:
        """Learn the reference statistics from clean model-space images ``x`` (``(N, C, H, W)``; paper: 5,000
        training images). With ``score_noise="random"`` each image's norm is the mean of ``fit_draws`` draws.
        Returns ``self``."""
        draws = 1 if self.score_noise == "fixed" else int(self.fit_draws)
        with torch.no_grad():
            norms = torch.stack([self.score_norms(x) for _ in range(draws)]).float().mean(0)
        fixed = self.score_noise == "fixed"
        reference = ReferenceStats.from_norms(
            norms,
            score_steps=int(self.score_steps),
            score_noise=self.score_noise,
            score_seed=int(self.score_seed) if fixed else None,
        )
        if self.reweight == "sigmoid" and self.tau is None and reference.std <= 0:
            raise ValueError("x: the score norms of the fitting set have zero std; pass more images or tau > 0.")
        self.reference = reference
        return self

    # ------------------------------------------------------------------ (3) noise, (4) reverse
    def purify(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        *,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        **engine: Any,
    ) -> torch.Tensor:
        """Noise each sample of model-space ``x`` to its level ``t_i`` and denoise it with the base.

        :param t: ``(B,)`` long levels, or float straight-through levels from ``levels(x, straight_through=True)``
            (then the forward noise carries the level's gradient, :func:`straight_through_noise`; single-stage bases
            only).
        :param noise: ``(B, C, H, W)`` forward noise (``None``: drawn from ``generator``).
        :param generator: the purification stream (``None``: torch's global RNG).
        :param engine: overrides of ``sampler``, ``steps``, ``eta``, ``checkpoint`` (e.g. a DDIM surrogate).
        """
        if t.is_floating_point():
            t_int = t.detach().round().long()
            if t.requires_grad:
                if not self.base.single_stage:
                    raise ValueError(f"t: straight-through levels need a single-stage base, got {self.base!r}.")
                if noise is None:
                    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
                noise = straight_through_noise(self.model, x, noise, t, t_int)
            t = t_int
        options: dict[str, Any] = {"sampler": self.sampler, "steps": self.steps, "eta": float(self.eta)}
        options["checkpoint"] = self.checkpoint
        options.update(engine)
        out = self.base(self.model, x, t, t_star=int(self.t_star), generator=generator, noise=noise, **options)
        finite = torch.isfinite(out.detach()).flatten(1).all(dim=1)
        if not bool(finite.all()):
            bad = (~finite).nonzero().squeeze(1)
            raise FloatingPointError(
                f"the reverse process of base={self.base!r} (sampler={options['sampler']!r}, "
                f"steps={options['steps']!r}) produced NaN or inf for {bad.numel()} of {out.shape[0]} samples (levels "
                f"{sorted({int(v) for v in t[bad.to(t.device)].tolist()})[:8]}); no purified image is returned."
            )
        return out

    def forward_straight_through(
        self, x: torch.Tensor, *, copies: int = 1, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The whole pipeline differentiable in ``x`` *through the selection* (for attacks on the levels).

        (1) score norms with gradient -- every copy its own draw with ``score_noise="random"``, one scoring of ``x``
        shared by its copies with the fixed bank; (2) straight-through levels (:meth:`levels_from_norms`: rounded
        value, gradient of the continuous reweighting); (3)-(4) :meth:`purify`, whose forward noise carries the
        level's gradient (:func:`~art_ssni.diffusion.sampling.straight_through_noise`). With
        ``reweight="constant"`` the levels are ``t*`` and only (3)-(4) run.

        :param x: ``(B, C, H, W)`` model-space inputs (with ``requires_grad`` for a gradient).
        :param copies: ``M >= 1`` sample-major copies of every input (EOT), each purified independently.
        :param generator: the purification stream.
        :return: ``(out, norms)``: ``(B·M, C, H, W)`` purified copies, and their ``(B·M,)`` score norms with
            gradient (``None`` for ``reweight="constant"``). Single-stage bases only (``ValueError`` otherwise).
        """
        if not is_int(copies) or copies < 1:
            raise ValueError(f"copies must be an int >= 1, got {copies!r}.")
        if self.selects_per_sample and not self.base.single_stage:
            raise ValueError(f"base: straight-through levels need a single-stage base, got {self.base!r}.")
        m = int(copies)
        xr = x.repeat_interleave(m, dim=0) if m > 1 else x
        if not self.selects_per_sample:
            return self.purify(xr, self.levels(xr), generator=generator), None
        if self.reference is None:
            raise ValueError(f"reference: reweight={self.reweight!r} is not fitted; call fit(x_clean) first.")
        norms = self.score_norms(xr) if self.score_noise == "random" else self.score_norms(x).repeat_interleave(m)
        t = self.levels_from_norms(norms, straight_through=True)  # (2)
        return self.purify(xr, t, generator=generator), norms  # (3)-(4)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Purify model-space ``x`` (``(B, C, H, W)``): score → reweight (unless ``t`` is given) → noise → reverse.

        The levels used are left in :attr:`last_levels`."""
        if t is None:
            t = self.levels(x)  # (1) score and (2) reweight
        else:
            self._remember(t)
        return self.purify(x, t, noise=noise, generator=generator)  # (3) noise and (4) reverse with the base


class PurifierSetting(Generic[_V]):
    """A parameter of a wrapper (e.g. the ART face) that lives on the wrapper's ``purifier``: one copy of each
    setting, read and written through (``params``-style ``setattr`` included)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, objtype: Any = None) -> _V:
        return getattr(obj.purifier, self.name)

    def __set__(self, obj: Any, value: _V) -> None:
        setattr(obj.purifier, self.name, value)
