"""Layer 4: the registry of named defence configurations -- one source of truth for the CLI and the leaderboard.

A name maps to a factory ``factory(model, *, reference=None, **overrides) -> SSNIPreprocessor``. Built-in names:

* ``diffpure`` -- constant noise level ``t*`` (Nie et al. 2022), the base method;
* ``ssni-n`` -- SSNI with sigmoid reweighting;
* ``ssni-l`` -- SSNI with linear reweighting;
* ``gns``, ``gns+ssni-n``, ``gns+ssni-l`` -- GNS (Lee & Kim 2023) stages with constant / SSNI-N / SSNI-L noise;
* ``gdmp``, ``gdmp+ssni-n``, ``gdmp+ssni-l`` -- GDMP (Wang et al. 2022), official CIFAR-10 setting (``t* = 36``,
  4 guided rounds), with constant / SSNI-N / SSNI-L noise.

Settings passed to :func:`make` override a preset's (e.g. ``t_star``, or ``base=GDMP(scale=gdmp_scale_for(shape))``
for small images). :func:`spec` tells what a name is (its base object, reweighting, whether it needs reference
statistics) without building anything, so the CLI and the leaderboard need no lists of their own.

Third-party packages add names through the entry-point group ``art_ssni.defences`` (each entry point loads a
factory with the signature above), e.g. in their ``pyproject.toml``::

    [project.entry-points."art_ssni.defences"]
    my-defence = "my_package.defences:make_my_defence"

Names are matched exactly (no prefixes, no case folding).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Protocol

from art_ssni.diffusion.model import DiffusionModel
from art_ssni.preprocessor import SSNIPreprocessor
from art_ssni.ssni.bases import GDMP, GDMP_T_STAR, GNS, Base, DiffPure, gdmp_scale_for
from art_ssni.ssni.reference import ReferenceStats

__all__ = [
    "ENTRY_POINT_GROUP",
    "DefenceFactory",
    "DefenceSpec",
    "available",
    "make",
    "register",
    "sized_for",
    "spec",
]

ENTRY_POINT_GROUP = "art_ssni.defences"


class DefenceFactory(Protocol):
    def __call__(
        self, model: DiffusionModel, *, reference: ReferenceStats | None = None, **overrides: Any
    ) -> SSNIPreprocessor: ...


@dataclass(frozen=True)
class DefenceSpec:
    """What a registered name builds (before any override).

    :param base: the base object (``single_stage`` tells whether straight-through attacks apply).
    :param reweight: ``"constant"``, ``"sigmoid"`` or ``"linear"``.
    :param t_star: the preset ``t*``, or ``None`` when the preset leaves it to the caller (the model's default).
    """

    base: Base
    reweight: str
    t_star: int | None = None

    @property
    def needs_reference(self) -> bool:
        """``True`` when the defence selects levels per sample and so needs reference statistics."""
        return self.reweight != "constant"

    def settings(self) -> dict[str, Any]:
        """The preset as :class:`SSNIPreprocessor` keywords."""
        out: dict[str, Any] = {"base": self.base, "reweight": self.reweight}
        return out if self.t_star is None else {**out, "t_star": self.t_star}


def _preset(preset: DefenceSpec) -> DefenceFactory:
    """A factory building an :class:`SSNIPreprocessor` from a spec; ``overrides`` win over the preset."""

    def factory(
        model: DiffusionModel, *, reference: ReferenceStats | None = None, **overrides: Any
    ) -> SSNIPreprocessor:
        settings = {**preset.settings(), **overrides}
        if settings.get("reweight") == "constant":
            reference = None  # a constant level never reads reference statistics
        return SSNIPreprocessor(model, reference=reference, **settings)

    factory.__doc__ = f"SSNIPreprocessor preset {preset}."
    return factory


_REWEIGHT_SUFFIX = {"": "constant", "+ssni-n": "sigmoid", "+ssni-l": "linear"}
#: GNS with Lee & Kim's CIFAR-10 stages; GDMP with the official CIFAR-10 setting (t* = 36, 4 rounds).
_BASE_PRESETS: dict[str, tuple[Base, int | None]] = {"gns": (GNS(), None), "gdmp": (GDMP(), GDMP_T_STAR)}
_SPECS: dict[str, DefenceSpec] = {
    "diffpure": DefenceSpec(DiffPure(), "constant"),
    "ssni-n": DefenceSpec(DiffPure(), "sigmoid"),
    "ssni-l": DefenceSpec(DiffPure(), "linear"),
    **{
        name + suffix: DefenceSpec(base, reweight, t_star)
        for name, (base, t_star) in _BASE_PRESETS.items()
        for suffix, reweight in _REWEIGHT_SUFFIX.items()
    },
}
_BUILTIN: dict[str, DefenceFactory] = {name: _preset(s) for name, s in _SPECS.items()}
_REGISTERED: dict[str, DefenceFactory] = {}
_REGISTERED_SPECS: dict[str, DefenceSpec] = {}


def register(name: str, factory: DefenceFactory, *, overwrite: bool = False, spec: DefenceSpec | None = None) -> None:
    """Register ``factory`` under the exact ``name`` (for code that cannot declare an entry point); ``spec`` tells
    :func:`spec` what it builds."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}.")
    if not callable(factory):
        raise TypeError(f"factory must be callable, got {type(factory).__name__}.")
    if not overwrite and name in _all():
        raise ValueError(f"name {name!r} is already registered; pass overwrite=True to replace it.")
    if spec is not None and not isinstance(spec, DefenceSpec):
        raise TypeError(f"spec must be a DefenceSpec or None, got {type(spec).__name__}.")
    _REGISTERED[name] = factory
    _REGISTERED_SPECS.pop(name, None)
    if spec is not None:
        _REGISTERED_SPECS[name] = spec


def _from_entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _all() -> dict[str, Any]:
    return {**_from_entry_points(), **_BUILTIN, **_REGISTERED}


def available() -> list[str]:
    """Sorted names of every registered defence (built-in, entry points, :func:`register`)."""
    return sorted(_all())


def make(
    name: str, model: DiffusionModel, *, reference: ReferenceStats | None = None, **overrides: Any
) -> SSNIPreprocessor:
    """Build the defence registered as ``name`` on ``model``; ``overrides`` are passed to its factory."""
    known = _all()
    if name not in known:
        raise ValueError(f"defence must be one of {sorted(known)}, got {name!r}.")
    factory = known[name]
    if isinstance(factory, EntryPoint):
        factory = factory.load()
    return factory(model, reference=reference, **overrides)


def sized_for(name: str, image_shape: Sequence[int]) -> dict[str, Any]:
    """Overrides of :func:`make` that adapt ``name``'s preset to images of ``(C, H, W)`` ``image_shape``.

    GDMP's preset scale is CIFAR-10's; on other image sizes the same per-pixel pull needs
    :func:`~art_ssni.ssni.bases.gdmp_scale_for` (on the 8x8 digits, 60000 makes the guided reverse process diverge).
    Every other preset is size-independent: ``{}``. Names registered without a spec get ``{}``.
    """
    try:
        base = spec(name).base
    except ValueError:
        return {}
    if isinstance(base, GDMP):
        return {"base": dataclasses.replace(base, scale=gdmp_scale_for(image_shape))}
    return {}


def spec(name: str) -> DefenceSpec:
    """What the registered ``name`` builds: :class:`DefenceSpec` (``base``, ``reweight``, ``needs_reference``).

    ``ValueError`` for an unknown name, or a name registered without a spec (entry points declare none).
    """
    known = _all()
    if name not in known:
        raise ValueError(f"defence must be one of {sorted(known)}, got {name!r}.")
    if name in _REGISTERED:
        if name in _REGISTERED_SPECS:
            return _REGISTERED_SPECS[name]
    elif name in _SPECS:
        return _SPECS[name]
    raise ValueError(f"defence {name!r} was registered without a spec; pass register(..., spec=DefenceSpec(...)).")
