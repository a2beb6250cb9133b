"""The method's published defaults per data set (Sun et al. 2025, following DiffPure, Nie et al. 2022).

* CIFAR-10 (32 × 32): ``t* = 100``, ``T' = 20`` (``score_steps``);
* ImageNet (256 × 256): ``t* = 150``, ``T' = 50``.

``t*`` is on the 1000-step DDPM linear schedule. :func:`paper_defaults` picks the row for a diffusion model by its
resolution, so that a 256 × 256 model never silently runs with CIFAR-10's values: :class:`~art_ssni.SSNIPurifier`
uses it when ``t_star`` / ``score_steps`` are ``None``. Both values were tuned for the score_sde / guided-diffusion
checkpoints of the papers; with another model (a stand-in such as ``google/ddpm-cifar10-32``, or the digits zoo,
whose ``t*`` is 200) treat them as a starting point and calibrate (docs/user-guide.md).
"""

from __future__ import annotations

from typing import Any

from art_ssni._common import is_int

__all__ = ["PAPER_DEFAULTS", "paper_defaults"]

#: data set -> ``{"t_star", "score_steps", "resolution"}`` of the paper (and DiffPure's t* for ImageNet)
PAPER_DEFAULTS: dict[str, dict[str, int]] = {
    "cifar10": {"t_star": 100, "score_steps": 20, "resolution": 32},
    "imagenet": {"t_star": 150, "score_steps": 50, "resolution": 256},
}
#: from this image side on, a model gets ImageNet's row (below it, CIFAR-10's)
HIGH_RESOLUTION = 128


def paper_defaults(model_or_size: Any) -> dict[str, Any]:
    """The published ``{"dataset", "t_star", "score_steps"}`` for a model (or an image side in pixels).

    Images of side ``< 128`` get CIFAR-10's row (``t* = 100``, ``T' = 20``), ``>= 128`` ImageNet's (``t* = 150``,
    ``T' = 50``).

    >>> paper_defaults(DiffusionModel.from_pretrained("google/ddpm-cifar10-32"))  # {'dataset': 'cifar10', ...}
    >>> paper_defaults(256)["t_star"]                                               # 150
    """
    size = getattr(model_or_size, "sample_size", model_or_size)
    if not is_int(size) or size < 1:
        raise ValueError(f"model_or_size must be a DiffusionModel or an image side >= 1, got {model_or_size!r}.")
    dataset = "imagenet" if int(size) >= HIGH_RESOLUTION else "cifar10"
    row = PAPER_DEFAULTS[dataset]
    return {"dataset": dataset, "t_star": row["t_star"], "score_steps": row["score_steps"]}
