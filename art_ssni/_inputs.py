"""Input checks of the ART face: arrays or tensors of images, their layout, dtype, shape and range; the settings
ART itself takes unchecked (``device_type``, ``apply_fit``, ``apply_predict``, ``clip_values``); and
:class:`DefendedClassifier`, ART's ``PyTorchClassifier`` with the same input checks on its numpy entry points.

Errors name the parameter and the fix (e.g. channels-last data given to a channels-first defence).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from art.estimators.classification import PyTorchClassifier

from art_ssni._common import is_finite_real

__all__ = [
    "DEVICE_TYPES",
    "DefendedClassifier",
    "as_tensor",
    "check_art_flags",
    "check_clip_values",
    "check_gradient",
    "check_images",
    "clips_match",
]

DEVICE_TYPES = ("cpu", "gpu")  # ART's names


def check_art_flags(device_type: Any, *, apply_fit: Any, apply_predict: Any) -> None:
    """ART's own settings of a preprocessor: ``device_type`` one of :data:`DEVICE_TYPES` (``"gpu"`` without CUDA
    falls back to the CPU as in ART, with a ``UserWarning``), ``apply_fit`` / ``apply_predict`` bools."""
    if not isinstance(device_type, str) or device_type not in DEVICE_TYPES:
        raise ValueError(f"device_type must be one of {list(DEVICE_TYPES)} (ART's names), got {device_type!r}.")
    for name, flag in (("apply_fit", apply_fit), ("apply_predict", apply_predict)):
        if not isinstance(flag, bool):
            raise ValueError(f"{name} must be a bool, got {flag!r}.")
    if device_type == "gpu" and not torch.cuda.is_available():
        warnings.warn("device_type='gpu': no CUDA device is available, running on the CPU.", stacklevel=3)


def check_clip_values(lo_hi: Any) -> None:
    """``clip_values`` must be a ``(min, max)`` pair of finite numbers with ``min < max``."""
    if (
        not isinstance(lo_hi, (tuple, list))
        or len(lo_hi) != 2
        or not all(is_finite_real(v) for v in lo_hi)
        or not lo_hi[0] < lo_hi[1]
    ):
        raise ValueError(f"clip_values must be a (min, max) pair of finite numbers with min < max, got {lo_hi!r}.")


def clips_match(theirs: Any, ours: Any) -> None:
    """``ValueError`` naming ``clip_values`` when a classifier's range ``theirs`` differs from the defence's."""
    theirs = None if theirs is None else tuple(float(v) for v in np.asarray(theirs).reshape(-1))
    ours = tuple(float(v) for v in ours)
    if theirs != ours:
        raise ValueError(
            f"clip_values: the classifier has clip_values={theirs} but the defence {ours}; pass the classifier's range "
            "as SSNIPreprocessor(clip_values=...) or the defence's as the classifier's."
        )


def check_gradient(x: torch.Tensor, grad: Any, *, channels_first: bool = True) -> None:
    """``grad`` of :meth:`~art_ssni.SSNIPreprocessor.estimate_gradient`: the shape of the (validated, NCHW) batch
    ``x`` in the caller's layout, or ``(B, K, ...)`` class gradients; finite numbers."""
    shape = tuple(x.shape) if channels_first else (x.shape[0], *x.shape[2:], x.shape[1])
    g = np.asarray(grad)
    if g.dtype == object or not np.issubdtype(g.dtype, np.number) or np.iscomplexobj(g):
        raise TypeError(f"grad must be a real numeric array, got dtype {g.dtype}.")
    if g.shape != shape and not (g.ndim == len(shape) + 1 and (g.shape[0], *g.shape[2:]) == shape):
        raise ValueError(f"grad must have the shape of x {shape} or (B, K, ...) {shape[:1] + ('K',) + shape[1:]}, "
                         f"got {g.shape}.")  # fmt: skip
    if not np.isfinite(g).all():
        raise ValueError("grad must be finite, got NaN or inf.")


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
    lo, hi = float(clip_values[0]), float(clip_values[1])
    if x.dtype == torch.uint8:
        raise TypeError(
            f"{name} must be a floating-point array in clip_values [{lo}, {hi}], got uint8 (8-bit pixels in [0, 255]): "
            f"divide by 255 (x / 255.0) for clip_values (0, 1)."
        )
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
    tol = 1e-6 * (hi - lo)
    x_min, x_max = float(x.detach().min()), float(x.detach().max())
    if x_min < lo - tol or x_max > hi + tol:
        raise ValueError(f"{name} must lie in clip_values [{lo}, {hi}], got values in [{x_min}, {x_max}].")
    return x.float()


def _numpy_input(x: Any, name: str = "x") -> Any:
    """What ART's numpy entry points can take: big-endian arrays as native copies, clear errors for tensors that
    require grad (ART converts them with ``numpy()``) -- the caller's array is never modified."""
    if isinstance(x, torch.Tensor) and x.requires_grad:
        raise TypeError(
            f"{name} is a tensor that requires grad: predict / loss_gradient are ART's numpy entry points; pass "
            f"{name}.detach() (or call the defence's forward for a differentiable result)."
        )
    if isinstance(x, np.ndarray) and x.dtype.fields is None and not x.dtype.isnative:
        return x.astype(x.dtype.newbyteorder("="))
    return x


class DefendedClassifier(PyTorchClassifier):
    """ART's ``PyTorchClassifier`` (same arguments) whose ``predict``, ``loss_gradient`` and ``class_gradient`` accept
    big-endian arrays and refuse tensors that require grad with a clear message, instead of failing inside ART."""

    def loss_gradient(self, x: Any, y: Any, **kwargs: Any) -> Any:  # noqa: D102
        return super().loss_gradient(_numpy_input(x), y, **kwargs)

    def class_gradient(self, x: Any, label: Any = None, **kwargs: Any) -> Any:  # noqa: D102
        return super().class_gradient(_numpy_input(x), label, **kwargs)


def _predict(self: DefendedClassifier, x: Any, batch_size: int = 128, **kwargs: Any) -> Any:
    return PyTorchClassifier.predict(self, _numpy_input(x), batch_size=batch_size, **kwargs)


# set after the class is made: ART's metaclass wraps a ``predict`` of the class body with its own conversion
# (np.array(x)), which would fail on a tensor that requires grad before this check could run
DefendedClassifier.predict = _predict
