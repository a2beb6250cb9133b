"""Input checks of the ART face: arrays or tensors of images, their layout, dtype, shape and range (no ART).

Errors name the parameter and the fix (e.g. channels-last data given to a channels-first defence).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["as_tensor", "check_images"]


def as_tensor(x: Any, name: str = "x") -> torch.Tensor:
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


def check_images(
    x: Any,
    name: str = "x",
    *,
    channels: int,
    size: int,
    clip_values: tuple[float, float],
    channels_first: bool = True,
) -> torch.Tensor:
    """Check a batch of images and return it as a float32 ``(B, C, H, W)`` tensor (new when cast or transposed).

    :param x: ``(B, C, H, W)`` (``channels_first``) or ``(B, H, W, C)`` floating array or tensor in ``clip_values``.
    :param channels: ``C`` and :param size: ``H = W`` the model expects.
    """
    x = as_tensor(x, name)
    if x.dtype == torch.bool or not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point array (float16/32/64), got {x.dtype}.")
    if x.device.type == "meta":
        raise ValueError(f"{name} must hold data, got a tensor on the meta device.")
    layout = "(B, C, H, W)" if channels_first else "(B, H, W, C)"
    if x.dim() != 4:
        raise ValueError(f"{name} must have shape {layout}, got {tuple(x.shape)}.")
    if x.shape[0] == 0:
        raise ValueError(f"{name} must not be an empty batch, got shape {tuple(x.shape)}.")
    c, s = channels, size
    if channels_first and x.shape[1] != c and x.shape[3] == c:
        raise ValueError(f"{name} has shape {tuple(x.shape)}, channels last (B, H, W, C); pass channels_first=False.")
    x = x if channels_first else x.permute(0, 3, 1, 2)
    if x.shape[1] != c:
        where = "dim 1, NCHW" if channels_first else "dim 3, NHWC"
        raise ValueError(f"{name} must have {c} channels ({where}) for this UNet, got {x.shape[1]}.")
    if tuple(x.shape[2:]) != (s, s):
        raise ValueError(f"{name} must have spatial size {(s, s)} for this UNet, got {tuple(x.shape[2:])}.")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} must be finite, got NaN or inf.")
    lo, hi = float(clip_values[0]), float(clip_values[1])
    tol = 1e-6 * (hi - lo)
    x_min, x_max = float(x.detach().min()), float(x.detach().max())
    if x_min < lo - tol or x_max > hi + tol:
        raise ValueError(f"{name} must lie in clip_values [{lo}, {hi}], got values in [{x_min}, {x_max}].")
    return x.float()
