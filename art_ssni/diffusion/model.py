"""The diffusion model: a diffusers ε-prediction UNet plus its noise schedule.

:class:`DiffusionModel` is the only object of this layer that holds weights. It owns

* the unit conversion between pixel space ``[0, 1]`` and model space ``[-1, 1]``,
* the forward (noising) process ``add_noise`` with one integer *noise level* per sample,
* ``eps`` -- one batched UNet call with one timestep per row, and the counter ``nfe`` of rows evaluated.

Noise levels. A level ``t`` in ``{0, ..., N}`` (``N = num_train_timesteps``) means "``t`` forward steps":
``x_t = sqrt(abar[t-1]) x_0 + sqrt(1 - abar[t-1]) z`` with diffusers' 0-based ``alphas_cumprod`` array
``abar``; level 0 is the clean input. Reversing level ``t`` takes ``t`` ancestral steps whose UNet timestep
indices are ``t-1, ..., 0`` -- the convention of DiffPure's discrete variant (t* = 100 on CIFAR-10).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import safetensors.torch  # noqa: F401 -- diffusers 0.29-0.32 call safetensors.torch.* without importing it
import torch
from diffusers.configuration_utils import ConfigMixin
from safetensors import safe_open

from art_ssni.diffusion.hub import PICKLE_SUFFIXES, UNET_WEIGHTS, resolve

if TYPE_CHECKING:  # diffusers' lazy top-level module shows type checkers placeholder classes: name the real ones
    from diffusers.models.unets.unet_2d import UNet2DModel
    from diffusers.schedulers.scheduling_ddim import DDIMScheduler
    from diffusers.schedulers.scheduling_ddpm import DDPMScheduler
else:
    from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel

__all__ = ["DiffusionModel", "default_scheduler"]


def _read_json_object(file: Path) -> dict[str, Any]:
    """A JSON object read from ``file``; ``ValueError`` naming the file when it is not one."""
    try:
        data = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise ValueError(f"name_or_path: {str(file)!r} is not valid JSON ({err}).") from err
    if not isinstance(data, dict):
        raise ValueError(f"name_or_path: {str(file)!r} must hold a JSON object, got {type(data).__name__}.")
    return data


def default_scheduler() -> DDPMScheduler:
    """The DDPM linear schedule of Ho et al. (β from 1e-4 to 0.02 over 1000 steps), ε-prediction."""
    return DDPMScheduler(
        num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear", prediction_type="epsilon"
    )


class DiffusionModel(torch.nn.Module):
    """A diffusers ``UNet2DModel`` (ε-prediction) together with its noise schedule.

    :param unet: a diffusers ``UNet2DModel`` predicting ε. A UNet with learned variance (``out_channels`` twice
        ``in_channels``) is accepted; only the ε half of its output is used.
    :param scheduler: a diffusers scheduler (``DDPMScheduler`` / ``DDIMScheduler`` or any with ``alphas_cumprod``
        and ``prediction_type == "epsilon"``). Only its schedule constants are read; its ``step`` is never called
        (it is scalar-timestep only). Defaults to :func:`default_scheduler`.

    Shapes: images are ``(B, C, H, W)`` with ``C = unet.config.in_channels`` and ``H = W = unet.config.sample_size``.
    The model is put in ``eval()`` mode and its parameters are frozen (``requires_grad=False``): gradients still
    flow to the *inputs*, which is what attacks need.
    """

    unet: UNet2DModel
    scheduler: Any  # a diffusers scheduler, duck-typed: alphas_cumprod, config.prediction_type, save_pretrained
    alphas_cumprod: torch.Tensor  # (N,) float32 buffer
    abar_table: torch.Tensor  # (N + 1,) float32 buffer: ᾱ at levels 0..N (ᾱ at level 0 is 1)

    def __init__(self, unet: UNet2DModel, scheduler: ConfigMixin | None = None) -> None:
        super().__init__()
        if not isinstance(unet, torch.nn.Module) or not hasattr(unet, "config"):
            raise TypeError(f"unet must be a diffusers UNet2DModel, got {type(unet).__name__}.")
        scheduler = default_scheduler() if scheduler is None else scheduler
        config: Any = unet.config
        if not hasattr(scheduler, "alphas_cumprod"):
            raise TypeError(
                f"scheduler must be a diffusers scheduler with alphas_cumprod, got {type(scheduler).__name__}."
            )
        prediction_type = getattr(scheduler.config, "prediction_type", "epsilon")
        if prediction_type != "epsilon":
            raise ValueError(f"scheduler.prediction_type must be 'epsilon', got {prediction_type!r}.")
        in_channels = int(config.in_channels)
        out_channels = int(config.out_channels)
        if out_channels not in (in_channels, 2 * in_channels):
            raise ValueError(
                f"unet.out_channels must equal in_channels (ε) or twice it (ε and variance), got {out_channels} "
                f"for in_channels={in_channels}."
            )
        self.unet = unet.eval().requires_grad_(False)
        self.scheduler = scheduler
        # (1) ᾱ_k for k = 0..N-1, precomputed once in float64 then stored as float32 (Ho et al. 2020, eq. 4).
        alphas_cumprod = torch.as_tensor(scheduler.alphas_cumprod, dtype=torch.float64)
        self.register_buffer("alphas_cumprod", alphas_cumprod.float(), persistent=False)
        # (1') the same table indexed by *level* (module docstring): ᾱ at level 0 is 1, level t is ᾱ_{t-1}. Built
        # once here, as diffusers' schedulers build their constants, instead of on every reverse step.
        table = torch.cat([alphas_cumprod.new_ones(1), alphas_cumprod])
        self.register_buffer("abar_table", table.float(), persistent=False)
        self.nfe = 0

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str],
        *,
        revision: str | None = None,
        subfolder: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        local_files_only: bool | None = None,
        torch_dtype: torch.dtype | None = None,
    ) -> DiffusionModel:
        """Load from a local diffusers folder or a Hugging Face Hub repo id, safetensors only (no pickle).

        >>> model = DiffusionModel.from_pretrained("google/ddpm-cifar10-32")            # Hub id (cached)
        >>> model = DiffusionModel.from_pretrained("./ddpm-cifar10-32")                 # local folder

        A repo id is resolved by :func:`art_ssni.diffusion.hub.resolve` through huggingface_hub, with its cache
        (``HF_HUB_CACHE`` / ``cache_dir``), offline mode (``HF_HUB_OFFLINE=1`` / ``local_files_only=True``) and
        revision pinning. Two layouts are accepted: a pipeline folder with ``unet/`` (and optionally
        ``scheduler/``) subfolders, as written by diffusers' ``DDPMPipeline.save_pretrained`` and by
        :meth:`save_pretrained`; or a bare UNet folder (``config.json`` + ``diffusion_pytorch_model.safetensors``,
        optionally ``scheduler_config.json``). Without a scheduler config the DDPM linear schedule is used.

        :param name_or_path: a local folder or a Hub repo id (an existing folder wins).
        :param revision: Hub branch, tag or commit hash (pin a commit for reproducible runs).
        :param subfolder: the folder inside ``name_or_path`` that holds the model.
        :param cache_dir: the Hub cache folder (default: huggingface_hub's).
        :param local_files_only: ``True``: never touch the network; ``None``: follow ``HF_HUB_OFFLINE``.
        :param torch_dtype: floating dtype of the UNet (``torch.float16`` / ``torch.bfloat16`` for half
            precision); the schedule constants stay float32. Default: the dtype of the saved weights, as float32.
        :raises FileNotFoundError: a one-line message when the folder or repo cannot be found.

        Which SSNI settings: :func:`art_ssni.ssni.paper_defaults` gives the paper's ``t*`` and ``T'`` for the model's
        resolution (CIFAR-10, 32 px: ``t* = 100``, ``T' = 20``; ImageNet, 256 px: ``t* = 150``, ``T' = 50``);
        :class:`~art_ssni.SSNIPurifier` uses them when ``t_star`` / ``score_steps`` are ``None``. They were tuned
        for the papers' score_sde / guided-diffusion checkpoints: with any other model (``google/ddpm-cifar10-32`` is
        a stand-in) fit the reference statistics on it and check ``t*`` (docs/user-guide.md, "Which model").
        :raises ValueError: for pickle-only weights (named, with how to convert them), corrupt or mismatched files.
        """
        if torch_dtype is not None and (not isinstance(torch_dtype, torch.dtype) or not torch_dtype.is_floating_point):
            raise TypeError(f"torch_dtype must be None or a floating torch.dtype, got {torch_dtype!r}.")
        root = resolve(
            name_or_path,
            revision=revision,
            subfolder=subfolder,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
        )
        unet_dir = root / "unet" if (root / "unet").is_dir() else root
        sched_dir = root / "scheduler" if (root / "scheduler").is_dir() else root
        config_file, weights_file = unet_dir / "config.json", unet_dir / UNET_WEIGHTS
        if not config_file.is_file():
            raise FileNotFoundError(f"name_or_path: no UNet config.json in {str(unet_dir)!r}.")
        _read_json_object(config_file)
        if not weights_file.is_file():
            pickled = sorted(p.name for p in unet_dir.iterdir() if p.suffix in PICKLE_SUFFIXES)
            if pickled:
                raise ValueError(
                    f"name_or_path: {str(unet_dir)!r} holds only pickle weights {pickled}, which are never loaded "
                    f"(unpickling can run code); convert them to {UNET_WEIGHTS} in a trusted environment: "
                    "UNet2DModel.from_pretrained(folder, use_safetensors=False).save_pretrained(out, "
                    "safe_serialization=True)."
                )
            raise FileNotFoundError(f"name_or_path: UNet weights {str(weights_file)!r} do not exist.")
        try:  # the header check also catches truncated files (the header must cover the whole file)
            with safe_open(str(weights_file), framework="pt") as handle:
                weight_names = set(handle.keys())
        except Exception as err:  # safetensors raises its own SafetensorError, not a ValueError
            raise ValueError(f"name_or_path: {str(weights_file)!r} is not a valid safetensors file ({err}).") from err
        try:
            unet = UNet2DModel.from_pretrained(
                unet_dir, use_safetensors=True, local_files_only=True, low_cpu_mem_usage=False
            )
            if torch_dtype is not None:
                unet = unet.to(torch_dtype)
        except (OSError, RuntimeError, ValueError, TypeError, KeyError, NotImplementedError) as err:
            raise ValueError(
                f"name_or_path: cannot build the UNet from {str(config_file)!r} and {str(weights_file)!r} (corrupt, "
                f"or the config does not match the weights): {err}"
            ) from err
        missing, unexpected = set(unet.state_dict()) - weight_names, weight_names - set(unet.state_dict())
        if missing or unexpected:
            raise ValueError(
                f"name_or_path: {str(config_file)!r} does not match the weights {str(weights_file)!r}: "
                f"{len(missing)} parameter(s) missing (e.g. {sorted(missing)[:3]}), {len(unexpected)} unexpected "
                f"(e.g. {sorted(unexpected)[:3]})."
            )
        scheduler: Any
        sched_file = sched_dir / "scheduler_config.json"
        if sched_file.is_file():
            config = _read_json_object(sched_file)
            kind = DDIMScheduler if config.get("_class_name") == "DDIMScheduler" else DDPMScheduler
            try:
                scheduler = kind.from_config(kind.load_config(sched_dir, local_files_only=True))
            except (OSError, RuntimeError, ValueError, TypeError, KeyError, NotImplementedError) as err:
                raise ValueError(f"name_or_path: invalid scheduler config {str(sched_file)!r}: {err}") from err
        else:
            scheduler = default_scheduler()
        try:
            return cls(unet, scheduler)
        except (TypeError, ValueError) as err:  # e.g. a v-prediction scheduler or a learned-variance mismatch
            raise ValueError(f"name_or_path: {str(root)!r} is not an ε-prediction UNet + scheduler: {err}") from err

    def save_pretrained(self, path: str | os.PathLike[str]) -> None:
        """Write ``unet/`` (config + safetensors weights) and ``scheduler/`` into ``path``."""
        root = Path(path)
        self.unet.save_pretrained(root / "unet", safe_serialization=True)
        self.scheduler.save_pretrained(root / "scheduler")

    # ------------------------------------------------------------------ properties
    @property
    def num_timesteps(self) -> int:
        """N, the number of diffusion timesteps of the schedule."""
        return int(self.alphas_cumprod.shape[0])

    @property
    def in_channels(self) -> int:
        config: Any = self.unet.config
        return int(config.in_channels)

    @property
    def sample_size(self) -> int:
        config: Any = self.unet.config
        size = config.sample_size
        return int(size[0] if isinstance(size, (tuple, list)) else size)

    @property
    def device(self) -> torch.device:
        return self.alphas_cumprod.device

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the UNet's parameters: model-space inputs must have it."""
        return next(self.unet.parameters()).dtype

    def check_input(self, x: Any, name: str = "x") -> None:
        """Validate a model-space batch for this model, before any UNet call.

        ``x`` must be a finite ``(B, C, H, W)`` tensor with ``C = in_channels``, ``H = W = sample_size``, the model's
        :attr:`dtype` and :attr:`device` (a ``meta`` tensor is refused: it holds no data). Raises ``TypeError`` (type,
        dtype) or ``ValueError`` (shape, device, NaN/inf) whose message starts with ``name``.
        """
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}.")
        if x.dim() != 4:
            raise ValueError(f"{name} must be a (B, C, H, W) tensor, got shape {tuple(x.shape)}.")
        if x.dtype != self.dtype:
            raise TypeError(f"{name} must have the model's dtype {self.dtype}, got {x.dtype}.")
        if x.device != self.device:
            raise ValueError(f"{name} must be on the model's device {self.device}, got {x.device}.")
        c, s = self.in_channels, self.sample_size
        if x.shape[1] != c or tuple(x.shape[2:]) != (s, s):
            raise ValueError(f"{name} must have shape (B, {c}, {s}, {s}) for this UNet, got {tuple(x.shape)}.")
        if not bool(torch.isfinite(x.detach()).all()):
            raise ValueError(f"{name} must be finite, got NaN or inf.")

    def reset_nfe(self) -> None:
        """Reset the count of UNet sample-evaluations."""
        self.nfe = 0

    # ------------------------------------------------------------------ maths
    @staticmethod
    def to_model_space(x: torch.Tensor) -> torch.Tensor:
        """Pixels in ``[0, 1]`` → model space ``[-1, 1]`` (``2x - 1``)."""
        return 2.0 * x - 1.0

    @staticmethod
    def to_pixel_space(x: torch.Tensor) -> torch.Tensor:
        """Model space ``[-1, 1]`` → pixels in ``[0, 1]`` (``(x + 1) / 2``); no clipping."""
        return (x + 1.0) / 2.0

    def abar(self, level: torch.Tensor) -> torch.Tensor:
        """ᾱ at integer noise levels ``level`` (any shape, values in ``[0, N]``); ᾱ at level 0 is 1.

        A lookup in :attr:`abar_table` (``(N + 1,)`` float32, precomputed once in ``__init__``)."""
        return self.abar_table[level.to(device=self.abar_table.device, dtype=torch.long)]

    def add_noise(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Forward process to per-sample noise levels (pure function).

        (2) ``x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) z`` (Ho et al. 2020, eq. 4), with ᾱ at *level* ``t`` (see the
        module docstring; level 0 returns ``x0`` unchanged).

        :param x0: ``(B, C, H, W)`` images in model space.
        :param t: ``(B,)`` integer levels in ``[0, N]``.
        :param noise: ``(B, C, H, W)`` standard Gaussian noise.
        :return: ``(B, C, H, W)`` noised images.
        """
        abar = self.abar(t.to(self.device)).to(x0.dtype).view(-1, *([1] * (x0.dim() - 1)))
        return abar.sqrt() * x0 + (1.0 - abar).sqrt() * noise

    def eps(self, x_t: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        """One batched UNet call: predicted ε for each row at its own UNet timestep index.

        :param x_t: ``(B, C, H, W)`` noised images in model space.
        :param timestep: ``(B,)`` integer UNet timestep indices in ``[0, N-1]`` (level ``t`` uses index ``t-1``).
        :return: ``(B, C, H, W)`` predicted noise. Adds ``B`` to :attr:`nfe`.
        """
        timestep = timestep.to(device=x_t.device, dtype=torch.long)
        self.nfe += int(x_t.shape[0])
        out = self.unet(x_t, timestep).sample
        return out[:, : x_t.shape[1]]

    def forward(self, x_t: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.eps(x_t, timestep)
