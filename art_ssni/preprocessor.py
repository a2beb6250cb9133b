"""Layer 3: the ART face -- :class:`SSNIPreprocessor`, a ``PreprocessorPyTorch`` around an :class:`SSNIPurifier`.

The only module of the core that imports ART. The method itself (score → reweight → noise → reverse) is the pure-torch
:class:`~art_ssni.ssni.SSNIPurifier` in model space ``[-1, 1]``; this class converts from the estimator's
``clip_values``, validates inputs, batches, seeds the purification stream, expands EOT copies, chooses how gradients
flow and saves / loads the whole defence.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from art.defences.preprocessor.preprocessor import PreprocessorPyTorch
from tqdm.auto import tqdm

from art_ssni._common import art_device_type, is_int
from art_ssni._defence_files import CONFIG_NAME, MODEL_SUBFOLDER, read_config, write_config
from art_ssni._inputs import as_tensor, check_art_flags, check_clip_values, check_gradient, check_images, clips_match
from art_ssni._version import __version__
from art_ssni.diffusion.hub import resolve
from art_ssni.diffusion.model import DiffusionModel
from art_ssni.ssni.bases import Base, base_to_dict
from art_ssni.ssni.purifier import PurifierSetting, SSNIPurifier, derive_score_seed
from art_ssni.ssni.reference import ReferenceStats

__all__ = ["GRADIENT_MODES", "MAX_SIZE", "SSNIPreprocessor"]

GRADIENT_MODES = ("exact", "surrogate", "bpda")
#: the largest ``batch_size``, ``eot_samples`` and ``fit_draws`` accepted (larger: a typo, or an attack on memory)
MAX_SIZE = 100_000
#: every setting of the purifier (its constructor's parameters), each a parameter of the face
PURIFIER_SETTINGS = tuple(inspect.signature(SSNIPurifier).parameters)


class SSNIPreprocessor(PreprocessorPyTorch):
    """Sample-Specific Noise Injection (SSNI) diffusion purification as an ART preprocessing defence.

    Each input is scored with the diffusion model (norm of its averaged score over ``T' = score_steps`` timesteps),
    the norm is mapped to a per-sample level ``t_i`` (``reweight``: ``"sigmoid"`` = SSNI-N, ``"linear"`` = SSNI-L,
    ``"constant"`` = the base at ``t_star``), and every sample is purified from its own ``t_i`` by the ``base``.

    | Paper link: Sun et al., "Sample-Specific Noise Injection For Diffusion-Based Adversarial Purification",
      ICML 2025, https://arxiv.org/abs/2410.16311
    | Please keep in mind the limitations of defences: see https://arxiv.org/abs/1802.00420 and
      https://arxiv.org/abs/1902.06705. Diffusion purification has been over-estimated by approximate gradients
      (https://arxiv.org/abs/2303.09051): evaluate it with exact gradients, EOT and attacks on the level selection.

    Inputs are ``(B, C, H, W)`` arrays or tensors in ``clip_values`` (any float dtype: cast); outputs are float32,
    same shape and layout, in ``clip_values``, on the input's device. The level selection runs without gradient.

    The method's settings ``reweight``, ``t_star``, ``bias``, ``tau``, ``reference``, ``score_steps``, ``score_noise``,
    ``fit_draws``, ``base`` (``DiffPure()``, ``GNS(stages=...)``, ``GDMP(...)`` or a name), ``sampler``, ``steps``,
    ``eta`` and ``checkpoint`` are those of :class:`~art_ssni.ssni.SSNIPurifier`; they live on :attr:`purifier`.

    :param model: the :class:`~art_ssni.diffusion.DiffusionModel` that scores and purifies (any float dtype: a
        float16 / bfloat16 UNet gets its inputs cast to its dtype).
    :param score_steps: ``T'``; ``None``: the reference's ``score_steps`` when it has one (its norms are only
        comparable under that ``T'``), else the paper's value for the model's resolution (20 at CIFAR-10 size).
    :param score_seed: seed of the score noise; ``None``: the reference's ``score_seed`` when it has one (the
        bank it was fitted with), else derived from ``seed`` (0 without a seed).
    :param clip_values: ``(min, max)`` pixel range of the inputs, e.g. ``(0.0, 1.0)``.
    :param batch_size: at most this many rows per UNet call (scoring) and images per purification chunk
        (``<= MAX_SIZE``).
    :param seed: seed of the purification stream (scoring never consumes it); ``None``: torch's global RNG.
    :param gradient: ``"exact"`` (back-propagation through every reverse step), ``"surrogate"`` (value of the real
        purifier, gradient of a ``surrogate_steps``-step deterministic DDIM run with the same forward noise) or
        ``"bpda"`` (identity backward).
    :param surrogate_steps: DDIM steps of the surrogate.
    :param eot_samples: with gradients and labels, every sample (and label) is repeated this many times, each copy
        purified independently (with ``score_noise="random"`` each copy also draws its own level); ``<= MAX_SIZE``.
    :param channels_first: ``(B, C, H, W)`` (``True``) or ``(B, H, W, C)`` (``False``) inputs and outputs.
    :param verbose: show a progress bar over purification chunks.
    :param device_type: ``"gpu"`` or ``"cpu"`` (ART convention); the model is moved there. ``"gpu"`` without a CUDA
        device runs on the CPU, as in ART, with a ``UserWarning``.
    :param apply_fit: / :param apply_predict: ART's flags (bools).
    """

    params = [*PURIFIER_SETTINGS, "clip_values", "seed", "gradient", "surrogate_steps", "eot_samples"]
    params += ["channels_first", "verbose"]

    model = PurifierSetting[DiffusionModel]()
    reweight = PurifierSetting[str]()
    t_star = PurifierSetting[int]()
    bias = PurifierSetting[float]()
    tau = PurifierSetting["float | None"]()
    reference = PurifierSetting["ReferenceStats | None"]()
    score_steps = PurifierSetting[int]()
    score_noise = PurifierSetting[str]()
    score_seed = PurifierSetting[int]()
    fit_draws = PurifierSetting[int]()
    base = PurifierSetting[Base]()
    sampler = PurifierSetting[str]()
    steps = PurifierSetting["int | None"]()
    eta = PurifierSetting[float]()
    checkpoint = PurifierSetting[bool]()
    batch_size = PurifierSetting[int]()

    def __init__(
        self,
        model: DiffusionModel,
        *,
        reweight: str = "sigmoid",
        t_star: int = 100,
        bias: float = 5.0,
        tau: float | None = None,
        reference: ReferenceStats | None = None,
        score_steps: int | None = None,
        score_noise: str = "fixed",
        score_seed: int | None = None,
        fit_draws: int = 8,
        base: Base | str = "diffpure",
        sampler: str = "ddpm",
        steps: int | None = None,
        eta: float = 1.0,
        checkpoint: bool = False,
        clip_values: tuple[float, float] = (0.0, 1.0),
        batch_size: int = 64,
        seed: int | None = None,
        gradient: str = "exact",
        surrogate_steps: int = 10,
        eot_samples: int = 1,
        channels_first: bool = True,
        verbose: bool = False,
        device_type: str = "gpu",
        apply_fit: bool = False,
        apply_predict: bool = True,
    ) -> None:
        check_art_flags(device_type, apply_fit=apply_fit, apply_predict=apply_predict)
        super().__init__(device_type=device_type, is_fitted=True, apply_fit=apply_fit, apply_predict=apply_predict)
        if seed is not None and (not is_int(seed) or seed < 0):
            raise ValueError(f"seed must be an int >= 0 or None, got {seed!r}.")
        if score_seed is None:  # the bank the reference was fitted with, else one derived from the seed
            ref_seed = getattr(reference, "score_seed", None)  # (a wrong type is refused by the purifier)
            score_seed = derive_score_seed(seed) if ref_seed is None else ref_seed
        self.purifier = SSNIPurifier(
            model, reweight=reweight, t_star=t_star, bias=bias, tau=tau, reference=reference, score_steps=score_steps,
            score_noise=score_noise, score_seed=score_seed, fit_draws=fit_draws,
            base=base, sampler=sampler, steps=steps, eta=eta, checkpoint=checkpoint, batch_size=batch_size,
        )  # fmt: skip
        self.clip_values, self.seed, self.gradient, self.surrogate_steps = clip_values, seed, gradient, surrogate_steps
        self.eot_samples, self.channels_first, self.verbose = eot_samples, channels_first, verbose
        self._check_params()
        self.purifier.to(self.device)
        self._generator: torch.Generator | None = None
        self.reset_generator()

    # ------------------------------------------------------------------ parameters
    def _check_params(self) -> None:
        self.purifier.check_params()
        check_clip_values(self.clip_values)
        if self.seed is not None and (not is_int(self.seed) or self.seed < 0):
            raise ValueError(f"seed must be an int >= 0 or None, got {self.seed!r}.")
        if self.gradient not in GRADIENT_MODES:
            raise ValueError(f"gradient must be one of {list(GRADIENT_MODES)}, got {self.gradient!r}.")
        limits = {"batch_size": MAX_SIZE, "eot_samples": MAX_SIZE, "fit_draws": MAX_SIZE}
        for name, most in {**limits, "surrogate_steps": self.model.num_timesteps}.items():
            if not is_int(getattr(self, name)) or not 1 <= getattr(self, name) <= most:
                raise ValueError(f"{name} must be an int in [1, {most}], got {getattr(self, name)!r}.")
        for name in ("channels_first", "verbose"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}.")

    def set_params(self, **kwargs: Any) -> None:
        """Set parameters and validate them; on a bad value every parameter keeps its old value, then it raises."""
        unknown = sorted(set(kwargs) - set(self.params))
        if unknown:
            raise ValueError(f"set_params: unknown parameter(s) {unknown}; the parameters are {self.params}.")
        old = {name: getattr(self, name) for name in kwargs}
        try:
            for name, value in kwargs.items():
                setattr(self, name, value)
            self._check_params()
        except (TypeError, ValueError):
            for name, value in old.items():
                setattr(self, name, value)
            raise

    @property
    def is_fitted(self) -> bool:
        """``True`` when the defence can run: reference statistics are set, or ``reweight="constant"``."""
        return self.purifier.is_fitted

    def check_estimator(self, estimator: Any) -> None:
        """``ValueError`` naming the parameter to set when ``estimator.clip_values`` differ from this defence's."""
        clips_match(getattr(estimator, "clip_values", None), self.clip_values)

    def reset_generator(self) -> None:
        """Restart the purification stream from ``seed`` and the random score stream from ``score_seed``."""
        self.purifier.reset_score_generator()
        self._generator = None if self.seed is None else torch.Generator(device=self.device).manual_seed(self.seed)

    @contextmanager
    def seeded(self, seed: int) -> Iterator[SSNIPreprocessor]:
        """Within the block the defence's ``seed`` is ``seed`` and its streams start from it; afterwards its own
        ``seed`` is back and its streams restart from that (the one home of "judge with these draws")."""
        own = self.seed
        self.set_params(seed=int(seed))
        self.reset_generator()
        try:
            yield self
        finally:
            self.set_params(seed=own)
            self.reset_generator()

    # ------------------------------------------------------------------ inputs and units
    def _validate(self, x: Any, name: str = "x") -> torch.Tensor:
        """Check an input batch and return it as a float32 NCHW tensor (new when a cast or transpose is needed)."""
        m = self.model
        return check_images(
            x, name, channels=m.in_channels, size=m.sample_size, clip_values=self.clip_values,
            channels_first=self.channels_first,
        )  # fmt: skip

    def to_model_space(self, x: torch.Tensor) -> torch.Tensor:
        """Inputs in ``clip_values`` -> model space ``[-1, 1]`` on the model's device, differentiable; float32 (or
        the model's dtype when more precise): a float16 / bfloat16 UNet gets its inputs cast at each call."""
        lo, hi = self.clip_values
        xm = self.model.to_model_space((x.to(self.device) - lo) / (hi - lo))
        return xm.to(torch.promote_types(self.model.dtype, torch.float32))

    def from_model_space(self, x: torch.Tensor) -> torch.Tensor:
        """Model-space ``x`` -> float32 in ``clip_values`` (clamped), differentiable."""
        lo, hi = self.clip_values
        return (lo + (hi - lo) * self.model.to_pixel_space(x.float())).clamp(lo, hi)

    # ------------------------------------------------------------------ scoring
    def score_norms(self, x: Any) -> np.ndarray:
        """Score norms of a batch in ``clip_values`` (numpy ``(B,)`` float32, for inspection and plots)."""
        with torch.no_grad():
            return self.purifier.score_norms(self.to_model_space(self._validate(x))).float().cpu().numpy()

    def timesteps(self, x: Any) -> np.ndarray:
        """Noise levels ``t_i`` the defence chooses for a batch (numpy ``(B,)`` int64)."""
        with torch.no_grad():
            return self.purifier.levels(self.to_model_space(self._validate(x))).cpu().numpy()

    def fit(self, x: Any, y: Any = None, **kwargs: Any) -> SSNIPreprocessor:
        """Learn :class:`ReferenceStats` from clean images ``x`` (``(N, C, H, W)`` in ``clip_values``); ``self``."""
        self.purifier.fit(self.to_model_space(self._validate(x)))
        return self

    # ------------------------------------------------------------------ purification
    def _purify_chunk(self, xm: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Purify one model-space chunk according to the gradient mode."""
        p, g = self.purifier, self._generator
        if not torch.is_grad_enabled() or not xm.requires_grad or self.gradient == "exact":
            return p.purify(xm, t, generator=g)
        noise = torch.randn(xm.shape, generator=g, device=xm.device, dtype=xm.dtype)
        with torch.no_grad():
            real = p.purify(xm, t, noise=noise, generator=g, checkpoint=False)
        if self.gradient == "bpda":  # BPDA (Athalye et al. 2018): the purifier's value, identity gradient
            return xm + (real - xm).detach()
        surrogate = p.purify(xm, t, noise=noise, generator=g, sampler="ddim", steps=self.surrogate_steps, eta=0.0)
        return surrogate + (real - surrogate).detach()

    def forward(self, x: torch.Tensor, y: Any = None) -> tuple[torch.Tensor, Any]:
        """Purify ``x`` (``(B, C, H, W)`` in ``clip_values``); returns ``(x_purified, y)``.

        With gradients enabled, ``y`` given and ``eot_samples = M > 1``, the batch comes back ``M`` times larger:
        every sample and its label repeated ``M`` times (consecutively), each copy purified independently.
        """
        x_in = x
        xm = self.to_model_space(self._validate(x))
        m = int(self.eot_samples) if self.eot_samples > 1 and torch.is_grad_enabled() and y is not None else 1
        if m > 1:
            y = y.repeat_interleave(m, dim=0) if isinstance(y, torch.Tensor) else np.repeat(y, m, axis=0)
        with torch.no_grad():
            if m > 1 and self.score_noise == "random":  # every EOT copy draws its own selection
                t = self.purifier.levels(xm.repeat_interleave(m, dim=0))
            else:
                t = self.purifier.levels(xm).repeat_interleave(m, dim=0)
        xm = xm.repeat_interleave(m, dim=0) if m > 1 else xm
        bs = int(self.batch_size)
        starts = tqdm(
            range(0, xm.shape[0], bs), desc="SSNI purification", unit="chunk", disable=None if self.verbose else True
        )
        out = torch.cat([self._purify_chunk(xm[i : i + bs], t[i : i + bs]) for i in starts])
        out = self.from_model_space(out)
        out = out if self.channels_first else out.permute(0, 2, 3, 1)
        return out.to(x_in.device if isinstance(x_in, torch.Tensor) else torch.device("cpu")), y

    def __call__(self, x: Any, y: Any = None) -> tuple[np.ndarray, Any]:
        """Numpy path: purify without gradient and return a new float32 array (the input is never modified)."""
        with torch.no_grad():
            out, y_out = self.forward(as_tensor(x), y)
        return out.cpu().numpy(), y_out

    # ------------------------------------------------------------------ saving and loading
    def to_config(self) -> dict[str, Any]:
        """Every parameter but ``model`` as JSON-ready values (the base as ``{"name": ..., **fields}``, the
        reference statistics as a dict): what :meth:`save_pretrained` stores and results record."""
        params: dict[str, Any] = {name: getattr(self, name) for name in self.params if name != "model"}
        params["base"] = base_to_dict(self.base)
        params["clip_values"] = [float(v) for v in self.clip_values]
        params["reference"] = None if self.reference is None else self.reference.to_dict()
        return params

    def save_pretrained(self, path: str | os.PathLike[str], *, save_model: bool = True) -> None:
        """Write ``ssni_config.json`` (every parameter incl. the base and ``score_seed``, the reference statistics,
        the package version) and, with ``save_model``, ``diffusion/`` (UNet + scheduler, safetensors) to ``path``."""
        root = Path(path)
        root.mkdir(parents=True, exist_ok=True)
        params = self.to_config()
        config: dict[str, Any] = {"class": type(self).__name__, "art_ssni_version": __version__, "params": params}
        config.update(device_type=art_device_type(self.device.type), apply_fit=self.apply_fit)
        config.update(apply_predict=self.apply_predict, reference=params.pop("reference"))
        config["diffusion"] = {"subfolder": MODEL_SUBFOLDER} if save_model else None
        if save_model:
            self.model.save_pretrained(root / MODEL_SUBFOLDER)
        write_config(root, config)

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike[str],
        *,
        model: DiffusionModel | None = None,
        revision: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        local_files_only: bool | None = None,
        **overrides: Any,
    ) -> SSNIPreprocessor:
        """Rebuild a defence written by :meth:`save_pretrained`: the same outputs as the saved one from the same state
        (right after construction, :meth:`fit` or :meth:`reset_generator`) for the same input.

        :param path: the folder, or a Hugging Face Hub repo id holding one (:func:`art_ssni.diffusion.hub.resolve`).
            Only regular files inside it are read (JSON and safetensors: nothing is unpickled), their fields typed.
        :param model: the diffusion model, required when the folder holds none; overrides the saved one otherwise.
        :param revision: Hub branch, tag or commit (repo ids only); ``cache_dir`` / ``local_files_only`` as in
            :func:`~art_ssni.diffusion.hub.resolve`.
        :param overrides: parameters that replace the saved ones (e.g. ``device_type="cpu"``).
        """
        root = resolve(path, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only)
        kwargs, folder = read_config(root, cls.__name__, cls.params)
        if model is None:
            if folder is None:
                raise ValueError(f"model: {str(root)!r} holds no diffusion model; pass model=DiffusionModel(...).")
            model = DiffusionModel.from_pretrained(folder)
        try:
            return cls(model, **{**kwargs, **overrides})
        except (TypeError, ValueError) as err:  # a bad saved value: say which file holds it
            raise type(err)(f"{str(root / CONFIG_NAME)!r}: {err}") from err

    # ------------------------------------------------------------------ ART's numpy gradient path
    def estimate_forward(self, x: torch.Tensor, y: Any = None) -> torch.Tensor:
        """Differentiable forward for ART's gradient chain (this ``gradient`` mode, no EOT expansion)."""
        return self.forward(x, None)[0]

    def estimate_gradient(self, x: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """Gradient through the defence for ART's numpy path: the vector-Jacobian product of
        :meth:`estimate_forward` with ``grad`` (same shape as ``x``, or ``(B, K, ...)`` class gradients), averaged
        over ``eot_samples`` independent purifications. Returns an array of ``grad``'s shape."""
        check_gradient(self._validate(x), grad, channels_first=self.channels_first)
        vjp, xs, gs = super().estimate_gradient, np.asarray(x, dtype=np.float32), np.asarray(grad, dtype=np.float32)
        return np.mean([vjp(xs, gs) for _ in range(int(self.eot_samples))], axis=0)
