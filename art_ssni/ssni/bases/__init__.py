"""The base purification methods SSNI plugs into, one small frozen dataclass per file (pure torch).

Every base maps ``(B, C, H, W)`` model-space images and ``(B,)`` per-sample levels ``t_i`` (chosen by the
reweighting, or ``t*`` for the constant baseline) to ``(B, C, H, W)`` purified model-space images:
``base(model, x, t, *, t_star, sampler=..., steps=..., eta=..., generator=..., noise=..., checkpoint=...)``.
All run through the batched per-sample engine of :mod:`art_ssni.diffusion.sampling` (one UNet call per iteration on
the rows that still have steps left), so a base costs exactly the sum of its per-sample stages in UNet rows
(``model.nfe``; ``base.nfe(t, ...)`` predicts it). All are differentiable with respect to ``x`` (levels are not).

* :class:`DiffPure` -- one stage at ``t_i`` (``single_stage = True``);
* :class:`GNS` -- Lee & Kim's stages in sequence, each scaled by ``t_i / t*``;
* :class:`GDMP` -- Wang et al.'s guided rounds (official CIFAR-10 ``t* =`` :data:`GDMP_T_STAR`).

:func:`make_base` turns the registered names ``"diffpure"``, ``"gns"``, ``"gdmp"`` (defaults) or a saved
``{"name": ..., **fields}`` dict into a base object; :func:`base_to_dict` is its inverse.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Union

from art_ssni.ssni.bases.diffpure import DiffPure
from art_ssni.ssni.bases.gdmp import GDMP, GDMP_T_STAR, gdmp_scale_for
from art_ssni.ssni.bases.gns import GNS, GNS_STAGES, gns_levels

__all__ = [
    "BASES",
    "GDMP",
    "GDMP_T_STAR",
    "GNS",
    "GNS_STAGES",
    "Base",
    "DiffPure",
    "base_to_dict",
    "gdmp_scale_for",
    "gns_levels",
    "make_base",
]

#: a base purification method
Base = Union[DiffPure, GNS, GDMP]  # noqa: UP007 -- a runtime alias, usable in isinstance()
#: registered name -> base class
BASES: dict[str, type[DiffPure] | type[GNS] | type[GDMP]] = {"diffpure": DiffPure, "gns": GNS, "gdmp": GDMP}


def make_base(value: Any) -> Base:
    """A base object from a base object, a registered name (default settings) or a :func:`base_to_dict` dict."""
    if isinstance(value, (DiffPure, GNS, GDMP)):
        return value
    if isinstance(value, str) and value in BASES:
        return BASES[value]()
    if isinstance(value, dict) and value.get("name") in BASES:
        fields = {k: v for k, v in value.items() if k != "name"}
        if "stages" in fields and isinstance(fields["stages"], list):
            fields["stages"] = tuple(fields["stages"])
        try:
            return BASES[value["name"]](**fields)
        except TypeError as err:
            raise ValueError(f"base: invalid settings {value!r} ({err}).") from err
    raise ValueError(f"base must be one of {list(BASES)} or a DiffPure / GNS / GDMP object, got {value!r}.")


def base_to_dict(base: Base) -> dict[str, Any]:
    """``{"name": ..., **fields}`` of a base (JSON-ready; :func:`make_base` reads it back)."""
    data = asdict(base)
    return {"name": base.name, **{k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}}
