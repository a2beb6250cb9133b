"""Layer 3: the ART face -- :class:`SSNIPreprocessor`, a ``PreprocessorPyTorch`` defence.

The only module of the core that imports ART. Everything below it (``art_ssni.diffusion``, ``art_ssni.ssni``) is
pure torch and works in model space; this class converts from the estimator's ``clip_values`` range, validates
inputs, batches, seeds, expands EOT copies and chooses how gradients flow.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from art.defences.preprocessor.preprocessor import PreprocessorPyTorch
from tqdm.auto import tqdm

from art_ssni._version import __version__
from art_ssni.diffusion.model import DiffusionModel
from art_ssni.diffusion.sampling import SAMPLERS
from art_ssni.ssni.bases import GNS_STAGES, check_base_params, purify_base
from art_ssni.ssni.reference import ReferenceStats
from art_ssni.ssni.reweight import REWEIGHTS, resolve_tau, select_timesteps
from art_ssni.ssni.score import score_norms

__all__ = ["GRADIENT_MODES", "SSNIPreprocessor"]

GRADIENT_MODES = ("exact", "surrogate", "bpda")
_CONFIG_NAME = "ssni_config.json"
_MODEL_SUBFOLDER = "diffusion"


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


class SSNIPreprocessor(PreprocessorPyTorch):
    """Sample-Specific Noise Injection (SSNI) diffusion purification as an ART preprocessing defence.

    Each input is scored with the diffusion model (the norm of its averaged score, ``T' = score_steps`` smallest
    timesteps), the score norm is mapped to a per-sample noise level ``t_i`` (``reweight``: ``"sigmoid"`` =
    SSNI-N, ``"linear"`` = SSNI-L, ``"constant"`` = DiffPure at ``t_star``), and every sample is noised to its own
    ``t_i`` and denoised back in one batched reverse process.

    | Paper link: Sun et al., "Sample-Specific Noise Injection For Diffusion-Based Adversarial Purification",
      ICML 2025, https://arxiv.org/abs/2410.16311
    | DiffPure: Nie et al., ICML 2022, https://arxiv.org/abs/2205.07460

    | Please keep in mind the limitations of defences. For more information on the limitations of this defence,
      see https://arxiv.org/abs/1802.00420 . For details on how to evaluate classifier security in general, see
      https://arxiv.org/abs/1902.06705 . Diffusion purification in particular has been over-estimated by
      evaluations with approximate gradients (https://arxiv.org/abs/2303.09051): evaluate it with exact gradients,
      EOT and attacks on the noise-level selection.

    Inputs are ``(B, C, H, W)`` arrays or tensors in ``clip_values``; outputs are float32, same shape, in
    ``clip_values``, on the input's device. The noise-level selection runs without gradient; the purification is
    differentiable according to ``gradient``.

    :param model: the :class:`~art_ssni.diffusion.DiffusionModel` that both scores and purifies.
    :param reweight: ``"sigmoid"`` (SSNI-N), ``"linear"`` (SSNI-L) or ``"constant"`` (DiffPure).
    :param t_star: base noise level ``t*`` of the method (CIFAR-10 DiffPure: 100), in ``[1, N - 1]``.
    :param bias: ``b >= 0``, the bias of the reweighting (paper: 5).
    :param tau: SSNI-N temperature ``τ > 0``; ``None`` uses the std of the reference score norms.
    :param score_steps: ``T'``, timesteps averaged in the score (paper: 20 on CIFAR-10).
    :param sampler: ``"ddpm"`` (ancestral, ``t_i`` steps) or ``"ddim"`` (``min(steps, t_i)`` steps).
    :param steps: DDIM steps (required for ``"ddim"``, must be ``None`` for ``"ddpm"``).
    :param eta: DDIM η in ``[0, 1]`` (0 deterministic, 1 stochastic).
    :param reference: :class:`~art_ssni.ssni.ReferenceStats` of clean score norms; or call :meth:`fit`.
    :param clip_values: ``(min, max)`` pixel range of the inputs, e.g. ``(0.0, 1.0)``.
    :param batch_size: memory safety valve: every UNet call of the defence (scoring: ``B · T'`` rows in all;
        purification: ``B · eot_samples`` rows per reverse step) is made in chunks of at most ``batch_size`` rows,
        whatever the input batch ``B``, so peak memory is bounded by ``batch_size`` (and, with gradients, by the
        number of reverse steps kept for backward unless ``checkpoint=True``).
    :param seed: seed of the preprocessor's own random generator (reproducible runs); ``None``: torch's global RNG.
    :param gradient: how ``loss_gradient`` flows through the purifier: ``"exact"`` (back-propagation through every
        reverse step), ``"surrogate"`` (forward value of the real purifier, gradient of a ``surrogate_steps``-step
        deterministic DDIM purifier with the same forward noise) or ``"bpda"`` (identity backward).
    :param surrogate_steps: DDIM steps of the surrogate purifier (``gradient="surrogate"``).
    :param checkpoint: checkpoint each reverse step so backward memory does not grow with the number of steps.
    :param eot_samples: when gradients are requested and labels are given, each sample (and label) is repeated
        this many times so that ART attacks average the gradient over independent purifications (EOT).
    :param base: the base purification method (:mod:`art_ssni.ssni.bases`): ``"diffpure"`` (one stage at
        ``t_i``), ``"gns"`` (stages ``gns_stages`` in sequence, each scaled by ``t_i / t_star``; combine with
        :func:`art_ssni.voting.majority_vote_predict` for GNS's vote) or ``"gdmp"`` (``gdmp_iterations`` guided
        purifications from ``t_i``; official CIFAR-10 setting ``t_star=36``). With ``gradient="surrogate"`` the
        surrogate is the same base run with a ``surrogate_steps``-step deterministic DDIM sampler.
    :param gns_stages: GNS stage levels ``s_k`` in ``[1, N - 1]`` (Lee & Kim, CIFAR-10: 30,30,30,30,50,50,125,125).
    :param gdmp_iterations: GDMP purification rounds ``>= 1`` (official: 4).
    :param gdmp_scale: GDMP guidance scale ``>= 0`` (official ``guide_scale`` 60000 for 32×32×3 images; scale it by
        ``C·H·W / 3072`` for other sizes, see :mod:`art_ssni.ssni.bases`).
    :param gdmp_distance: GDMP guidance distance, ``"mse"`` or ``"ssim"``.
    :param channels_first: inputs are ``(B, C, H, W)`` (``True``) or ``(B, H, W, C)`` (``False``); outputs keep
        the input layout.
    :param verbose: show a tqdm progress bar over purification chunks.
    :param device_type: ``"gpu"`` or ``"cpu"`` (ART convention); the model is moved there.
    :param apply_fit: apply the defence when the classifier is trained.
    :param apply_predict: apply the defence at prediction time.
    """

    params = [
        "model",
        "reweight",
        "t_star",
        "bias",
        "tau",
        "score_steps",
        "sampler",
        "steps",
        "eta",
        "reference",
        "clip_values",
        "batch_size",
        "seed",
        "gradient",
        "surrogate_steps",
        "checkpoint",
        "eot_samples",
        "base",
        "gns_stages",
        "gdmp_iterations",
        "gdmp_scale",
        "gdmp_distance",
        "channels_first",
        "verbose",
    ]

    def __init__(
        self,
        model: DiffusionModel,
        *,
        reweight: str = "sigmoid",
        t_star: int = 100,
        bias: float = 5.0,
        tau: float | None = None,
        score_steps: int = 20,
        sampler: str = "ddpm",
        steps: int | None = None,
        eta: float = 1.0,
        reference: ReferenceStats | None = None,
        clip_values: tuple[float, float] = (0.0, 1.0),
        batch_size: int = 64,
        seed: int | None = None,
        gradient: str = "exact",
        surrogate_steps: int = 10,
        checkpoint: bool = False,
        eot_samples: int = 1,
        base: str = "diffpure",
        gns_stages: tuple[int, ...] | list[int] = GNS_STAGES,
        gdmp_iterations: int = 4,
        gdmp_scale: float = 60000.0,
        gdmp_distance: str = "mse",
        channels_first: bool = True,
        verbose: bool = False,
        device_type: str = "gpu",
        apply_fit: bool = False,
        apply_predict: bool = True,
    ) -> None:
        super().__init__(device_type=device_type, is_fitted=True, apply_fit=apply_fit, apply_predict=apply_predict)
        self.model = model
        self.reweight = reweight
        self.t_star = t_star
        self.bias = bias
        self.tau = tau
        self.score_steps = score_steps
        self.sampler = sampler
        self.steps = steps
        self.eta = eta
        self.reference = reference
        self.clip_values = clip_values
        self.batch_size = batch_size
        self.seed = seed
        self.gradient = gradient
        self.surrogate_steps = surrogate_steps
        self.checkpoint = checkpoint
        self.eot_samples = eot_samples
        self.base = base
        self.gns_stages = gns_stages
        self.gdmp_iterations = gdmp_iterations
        self.gdmp_scale = gdmp_scale
        self.gdmp_distance = gdmp_distance
        self.channels_first = channels_first
        self.verbose = verbose
        self._check_params()
        self.model.to(self.device)
        self._generator: torch.Generator | None = None
        self.reset_generator()

    # ------------------------------------------------------------------ validation
    def _check_params(self) -> None:
        if not isinstance(self.model, DiffusionModel):
            raise TypeError(f"model must be an art_ssni.DiffusionModel, got {type(self.model).__name__}.")
        n = self.model.num_timesteps
        if self.reweight not in REWEIGHTS:
            raise ValueError(f"reweight must be one of {sorted(REWEIGHTS)}, got {self.reweight!r}.")
        if not _is_int(self.t_star) or not 1 <= self.t_star <= n - 1:
            raise ValueError(f"t_star must be an int in [1, {n - 1}], got {self.t_star!r}.")
        if not _is_number(self.bias) or not math.isfinite(self.bias) or self.bias < 0:
            raise ValueError(f"bias must be a finite number >= 0, got {self.bias!r}.")
        if self.tau is not None and (not _is_number(self.tau) or not math.isfinite(self.tau) or self.tau <= 0):
            raise ValueError(f"tau must be a finite number > 0 or None, got {self.tau!r}.")
        if not _is_int(self.score_steps) or not 1 <= self.score_steps <= n:
            raise ValueError(f"score_steps must be an int in [1, {n}], got {self.score_steps!r}.")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {list(SAMPLERS)}, got {self.sampler!r}.")
        if self.sampler == "ddim" and (self.steps is None or not _is_int(self.steps) or self.steps < 1):
            raise ValueError(f"steps must be an int >= 1 when sampler='ddim', got {self.steps!r}.")
        if self.sampler == "ddpm" and self.steps is not None:
            raise ValueError(f"steps must be None when sampler='ddpm' (one step per level), got {self.steps!r}.")
        if not _is_number(self.eta) or not 0.0 <= self.eta <= 1.0:
            raise ValueError(f"eta must be a number in [0, 1], got {self.eta!r}.")
        if self.reference is not None:
            if not isinstance(self.reference, ReferenceStats):
                raise TypeError(f"reference must be a ReferenceStats or None, got {type(self.reference).__name__}.")
            if self.reference.score_steps is not None and self.reference.score_steps != self.score_steps:
                raise ValueError(
                    f"reference was computed with score_steps={self.reference.score_steps}, but score_steps="
                    f"{self.score_steps}: score norms with different T' are not comparable."
                )
            if self.reweight == "sigmoid":
                resolve_tau(self.reference, self.tau)
            if self.reweight == "linear" and self.reference.max <= self.reference.min:
                raise ValueError("reference: reweight='linear' needs reference.max > reference.min.")
        if (
            not isinstance(self.clip_values, (tuple, list))
            or len(self.clip_values) != 2
            or not all(_is_number(v) and math.isfinite(v) for v in self.clip_values)
            or not self.clip_values[0] < self.clip_values[1]
        ):
            raise ValueError(
                f"clip_values must be a (min, max) pair of finite numbers with min < max, got {self.clip_values!r}."
            )
        if not _is_int(self.batch_size) or self.batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {self.batch_size!r}.")
        if self.seed is not None and (not _is_int(self.seed) or self.seed < 0):
            raise ValueError(f"seed must be an int >= 0 or None, got {self.seed!r}.")
        if self.gradient not in GRADIENT_MODES:
            raise ValueError(f"gradient must be one of {list(GRADIENT_MODES)}, got {self.gradient!r}.")
        if not _is_int(self.surrogate_steps) or self.surrogate_steps < 1:
            raise ValueError(f"surrogate_steps must be an int >= 1, got {self.surrogate_steps!r}.")
        if not isinstance(self.checkpoint, bool):
            raise ValueError(f"checkpoint must be a bool, got {self.checkpoint!r}.")
        if not _is_int(self.eot_samples) or self.eot_samples < 1:
            raise ValueError(f"eot_samples must be an int >= 1, got {self.eot_samples!r}.")
        if not isinstance(self.channels_first, bool):
            raise ValueError(f"channels_first must be a bool, got {self.channels_first!r}.")
        if not isinstance(self.verbose, bool):
            raise ValueError(f"verbose must be a bool, got {self.verbose!r}.")
        check_base_params(
            self.base,
            num_timesteps=n,
            gns_stages=self.gns_stages,
            gdmp_iterations=self.gdmp_iterations,
            gdmp_scale=self.gdmp_scale,
            gdmp_distance=self.gdmp_distance,
        )

    @property
    def is_fitted(self) -> bool:
        """``True`` when the defence can run: reference statistics are set, or ``reweight="constant"``."""
        return self.reweight == "constant" or self.reference is not None

    def _require_fitted(self) -> None:
        if not self.is_fitted:
            raise ValueError(
                f"reference: SSNIPreprocessor with reweight={self.reweight!r} is not fitted; call fit(x_clean) or "
                "pass reference=ReferenceStats(...)."
            )

    def reset_generator(self) -> None:
        """Restart the random stream from ``seed`` (no-op without a seed)."""
        if self.seed is None:
            self._generator = None
        else:
            self._generator = torch.Generator(device=self.device)
            self._generator.manual_seed(int(self.seed))

    @staticmethod
    def _as_tensor(x: Any, name: str = "x") -> torch.Tensor:
        """A numpy array or tensor as a tensor (sharing memory: never modified), with a clear type error."""
        if isinstance(x, np.ndarray):
            if x.dtype == object:
                raise TypeError(f"{name} must be a numeric array, got dtype object.")
            if not x.dtype.isnative:  # big-endian data: torch.from_numpy refuses it
                x = x.astype(x.dtype.newbyteorder("="))
            try:
                x = torch.from_numpy(np.ascontiguousarray(x))
            except TypeError as err:  # dtypes torch has no counterpart for (float128, strings, ...)
                raise TypeError(f"{name} must be a floating-point array (float16/32/64), got dtype {x.dtype}.") from err
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a numpy array or torch tensor, got {type(x).__name__}.")
        return x

    def _validate(self, x: Any, name: str = "x") -> torch.Tensor:
        """Check an input batch and return it as a float32 NCHW tensor (new when a cast or transpose is needed)."""
        x = self._as_tensor(x, name)
        if x.dtype == torch.bool or not (x.is_floating_point()):
            raise TypeError(f"{name} must be a floating-point array (float16/32/64), got {x.dtype}.")
        if x.device.type == "meta":
            raise ValueError(f"{name} must hold data, got a tensor on the meta device.")
        layout = "(B, C, H, W)" if self.channels_first else "(B, H, W, C)"
        if x.dim() != 4:
            raise ValueError(f"{name} must have shape {layout}, got {tuple(x.shape)}.")
        if x.shape[0] == 0:
            raise ValueError(f"{name} must not be an empty batch, got shape {tuple(x.shape)}.")
        if not self.channels_first:
            x = x.permute(0, 3, 1, 2)
        c, s = self.model.in_channels, self.model.sample_size
        if x.shape[1] != c:
            where = "dim 1, NCHW" if self.channels_first else "dim 3, NHWC"
            raise ValueError(f"{name} must have {c} channels ({where}) for this UNet, got {x.shape[1]}.")
        if tuple(x.shape[2:]) != (s, s):
            raise ValueError(f"{name} must have spatial size {(s, s)} for this UNet, got {tuple(x.shape[2:])}.")
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name} must be finite, got NaN or inf.")
        lo, hi = float(self.clip_values[0]), float(self.clip_values[1])
        tol = 1e-6 * (hi - lo)
        x_min, x_max = float(x.detach().min()), float(x.detach().max())
        if x_min < lo - tol or x_max > hi + tol:
            raise ValueError(f"{name} must lie in clip_values [{lo}, {hi}], got values in [{x_min}, {x_max}].")
        return x.float()

    # ------------------------------------------------------------------ unit conversion
    def _to_model(self, x: torch.Tensor) -> torch.Tensor:
        lo, hi = self.clip_values
        return self.model.to_model_space((x.to(self.device) - lo) / (hi - lo))

    def _to_clip(self, x: torch.Tensor) -> torch.Tensor:
        lo, hi = self.clip_values
        return (lo + (hi - lo) * self.model.to_pixel_space(x)).clamp(lo, hi)

    # ------------------------------------------------------------------ scoring and t-selection
    def _score_model_space(self, xm: torch.Tensor) -> torch.Tensor:
        """(B,) score norms of model-space inputs, with one shared noise draw for the whole call."""
        noise = torch.randn(
            (self.score_steps, *xm.shape[1:]), generator=self._generator, device=self.device, dtype=xm.dtype
        )
        chunks = [
            score_norms(
                self.model,
                xm[i : i + self.batch_size],
                score_steps=self.score_steps,
                noise=noise,
                batch_size=int(self.batch_size),  # UNet calls of at most batch_size rows (of the B·T' in all)
            )
            for i in range(0, xm.shape[0], self.batch_size)
        ]
        return torch.cat(chunks)

    def _levels(self, xm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B,) chosen levels and score norms (``None`` for ``reweight="constant"``, which needs no scoring)."""
        if self.reweight == "constant":
            return torch.full((xm.shape[0],), int(self.t_star), dtype=torch.long, device=self.device), None
        self._require_fitted()
        with torch.no_grad():
            norms = self._score_model_space(xm)
        t = select_timesteps(
            norms,
            self.reference,
            reweight=self.reweight,
            t_star=int(self.t_star),
            bias=float(self.bias),
            tau=self.tau,
            num_timesteps=self.model.num_timesteps,
        )
        return t, norms

    def score_norms(self, x: Any) -> np.ndarray:
        """Score norms of a batch in ``clip_values`` (numpy ``(B,)``, for inspection and plots)."""
        xm = self._to_model(self._validate(x))
        with torch.no_grad():
            return self._score_model_space(xm).cpu().numpy()

    def timesteps(self, x: Any) -> np.ndarray:
        """Noise levels ``t_i`` the defence would choose for a batch (numpy ``(B,)`` int64)."""
        xm = self._to_model(self._validate(x))
        return self._levels(xm)[0].cpu().numpy()

    def fit(self, x: Any, y: Any = None, **kwargs: Any) -> SSNIPreprocessor:
        """Learn :class:`ReferenceStats` from clean images ``x`` (``(N, C, H, W)`` in ``clip_values``).

        The paper uses 5,000 clean training images. Returns ``self``.
        """
        xm = self._to_model(self._validate(x))
        with torch.no_grad():
            norms = self._score_model_space(xm)
        reference = ReferenceStats.from_norms(norms, score_steps=int(self.score_steps))
        if self.reweight == "sigmoid" and self.tau is None and reference.std <= 0:
            raise ValueError("x: the score norms of the fitting set have zero std; pass more images or tau > 0.")
        self.reference = reference
        return self

    # ------------------------------------------------------------------ purification
    def _purify_base(self, xm: torch.Tensor, t: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """Purify model-space ``xm`` from levels ``t`` with the configured base (engine options in ``kwargs``)."""
        return purify_base(
            self.base,
            self.model,
            xm,
            t,
            t_star=int(self.t_star),
            gns_stages=tuple(int(s) for s in self.gns_stages),
            gdmp_iterations=int(self.gdmp_iterations),
            gdmp_scale=float(self.gdmp_scale),
            gdmp_distance=self.gdmp_distance,
            **kwargs,
        )

    def _purify_chunk(self, xm: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Purify one chunk in model space according to the gradient mode."""
        g = self._generator
        kwargs = dict(sampler=self.sampler, steps=self.steps, eta=float(self.eta), generator=g)
        if not torch.is_grad_enabled() or not xm.requires_grad or self.gradient == "exact":
            return self._purify_base(xm, t, checkpoint=self.checkpoint, **kwargs)
        noise = torch.randn(xm.shape, generator=g, device=xm.device, dtype=xm.dtype)
        with torch.no_grad():
            real = self._purify_base(xm, t, noise=noise, **kwargs)
        if self.gradient == "bpda":
            # BPDA (Athalye et al. 2018): forward value of the purifier, identity gradient.
            return xm + (real - xm).detach()
        surrogate = self._purify_base(
            xm,
            t,
            sampler="ddim",
            steps=int(self.surrogate_steps),
            eta=0.0,
            noise=noise,
            generator=g,  # draws of multi-stage bases (GNS stages, GDMP guidance); unused by DiffPure here
            checkpoint=self.checkpoint,
        )
        return surrogate + (real - surrogate).detach()

    def forward(self, x: torch.Tensor, y: Any = None) -> tuple[torch.Tensor, Any]:
        """Purify ``x`` (``(B, C, H, W)`` in ``clip_values``); returns ``(x_purified, y)``.

        When gradients are enabled, ``y`` is given and ``eot_samples = M > 1``, the batch is returned ``M`` times
        larger: every sample and its label repeated ``M`` times (consecutively), each copy purified independently.
        """
        x_in = x
        x = self._validate(x)
        xm = self._to_model(x)
        t, _ = self._levels(xm.detach())
        if self.eot_samples > 1 and torch.is_grad_enabled() and y is not None:
            m = int(self.eot_samples)
            xm, t = xm.repeat_interleave(m, dim=0), t.repeat_interleave(m, dim=0)
            y = y.repeat_interleave(m, dim=0) if isinstance(y, torch.Tensor) else np.repeat(y, m, axis=0)
        starts: Iterable[int] = range(0, xm.shape[0], self.batch_size)
        if self.verbose:
            starts = tqdm(starts, desc="SSNI purification", unit="chunk")
        out = torch.cat([self._purify_chunk(xm[i : i + self.batch_size], t[i : i + self.batch_size]) for i in starts])
        out = self._to_clip(out)
        if not self.channels_first:
            out = out.permute(0, 2, 3, 1)
        device = x_in.device if isinstance(x_in, torch.Tensor) else torch.device("cpu")
        return out.to(device), y

    def __call__(self, x: Any, y: Any = None) -> tuple[np.ndarray, Any]:
        """Numpy path: purify without gradient and return a new float32 array (the input is never modified)."""
        with torch.no_grad():
            out, y_out = self.forward(self._as_tensor(x), y)
        return out.cpu().numpy(), y_out

    # ------------------------------------------------------------------ saving and loading
    def save_pretrained(self, path: str | os.PathLike[str], *, save_model: bool = True) -> None:
        """Write this defence's configuration (and by default its diffusion model) to the folder ``path``.

        Files: ``ssni_config.json`` (every parameter, the reference statistics, the package version) and, with
        ``save_model``, ``diffusion/`` (the diffusers UNet + scheduler, safetensors). Without ``save_model`` the
        diffusion model must be passed to :meth:`from_pretrained`.
        """
        root = Path(path)
        root.mkdir(parents=True, exist_ok=True)
        params = {}
        for name in self.params:
            if name in ("model", "reference"):
                continue
            value = getattr(self, name)
            params[name] = list(value) if isinstance(value, tuple) else value
        config = {
            "class": type(self).__name__,
            "art_ssni_version": __version__,
            "params": params,
            "device_type": "cpu" if self.device.type == "cpu" else "gpu",
            "apply_fit": self.apply_fit,
            "apply_predict": self.apply_predict,
            "reference": None if self.reference is None else self.reference.to_dict(),
            "diffusion": {"subfolder": _MODEL_SUBFOLDER} if save_model else None,
        }
        if save_model:
            self.model.save_pretrained(root / _MODEL_SUBFOLDER)
        tmp = root / (_CONFIG_NAME + ".tmp")
        tmp.write_text(json.dumps(config, indent=2) + "\n")
        os.replace(tmp, root / _CONFIG_NAME)

    @classmethod
    def from_pretrained(
        cls, path: str | os.PathLike[str], *, model: DiffusionModel | None = None, **overrides: Any
    ) -> SSNIPreprocessor:
        """Rebuild a defence written by :meth:`save_pretrained` (same outputs for the same seed and input).

        :param path: the folder. Only files inside it are read (JSON and safetensors: nothing is unpickled).
        :param model: the diffusion model, required when the folder holds none; overrides the saved one otherwise.
        :param overrides: parameters that replace the saved ones (e.g. ``device_type="cpu"``).
        """
        root = Path(path)
        config_file = root / _CONFIG_NAME
        if not config_file.is_file():
            raise FileNotFoundError(f"path: {str(config_file)!r} does not exist.")
        try:
            config = json.loads(config_file.read_text())
            params = dict(config["params"])
            diffusion = config.get("diffusion")
            reference = config.get("reference")
            if diffusion is not None and not isinstance(diffusion.get("subfolder"), str):
                raise TypeError(f"'diffusion' must be null or {{'subfolder': str}}, got {diffusion!r}")
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, AttributeError, KeyError, TypeError) as err:
            raise ValueError(f"{str(config_file)!r} is not a valid SSNIPreprocessor config: {err}"[:2000]) from err
        if config.get("class") != cls.__name__:
            raise ValueError(f"{str(config_file)!r} describes a {config.get('class')!r}, not a {cls.__name__}.")
        unknown = sorted(set(params) - set(cls.params))
        if unknown:
            raise ValueError(f"{str(config_file)!r} has unknown parameter(s) {unknown}.")
        if model is None:
            if not diffusion:
                raise ValueError(f"model: {str(root)!r} holds no diffusion model; pass model=DiffusionModel(...).")
            sub = (root / str(diffusion["subfolder"])).resolve()
            if not sub.is_relative_to(root.resolve()):
                raise ValueError(f"{str(config_file)!r}: the diffusion subfolder must stay inside {str(root)!r}.")
            model = DiffusionModel.from_pretrained(sub)
        if reference is not None:
            try:
                reference = ReferenceStats.from_dict(reference)
            except (TypeError, ValueError) as err:
                raise ValueError(f"{str(config_file)!r}: invalid reference stats: {err}") from err
        for key in ("clip_values", "gns_stages"):
            if isinstance(params.get(key), list):
                params[key] = tuple(params[key])
        kwargs = {
            **params,
            "reference": reference,
            "device_type": config.get("device_type", "gpu"),
            "apply_fit": bool(config.get("apply_fit", False)),
            "apply_predict": bool(config.get("apply_predict", True)),
            **overrides,
        }
        try:
            return cls(model, **kwargs)
        except (TypeError, ValueError) as err:  # a bad saved value: say which file holds it
            raise type(err)(f"{str(config_file)!r}: {err}") from err

    # ------------------------------------------------------------------ ART's numpy gradient path
    def estimate_forward(self, x: torch.Tensor, y: Any = None) -> torch.Tensor:
        """Differentiable forward for ART's gradient chain: the purifier with this preprocessor's ``gradient`` mode
        (exact back-propagation, surrogate, or BPDA identity); no EOT expansion (see :meth:`estimate_gradient`)."""
        return self.forward(x, None)[0]

    def estimate_gradient(self, x: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """Gradient through the defence for ART's numpy path (used when ART does not chain ``forward`` itself, e.g.
        numpy estimators or chains with numpy preprocessors): the vector-Jacobian product of :meth:`estimate_forward`
        with ``grad``, averaged over ``eot_samples`` independent purifications.

        :param x: ``(B, ...)`` inputs the defence received (in the configured layout).
        :param grad: gradient with respect to the defence's output, same shape as ``x`` (or ``(B, K, ...)`` for class
            gradients, as ART passes them).
        :return: gradient with respect to ``x``, same shape as ``grad``.
        """
        self._validate(x)
        total = None
        for _ in range(int(self.eot_samples)):
            g = super().estimate_gradient(np.asarray(x, dtype=np.float32), np.asarray(grad, dtype=np.float32))
            total = g if total is None else total + g
        assert total is not None
        return total / float(self.eot_samples)
