"""Layer 4: the registry of named defence configurations -- one source of truth for the CLI and the leaderboard.

A name maps to a factory ``factory(model, *, reference=None, **overrides) -> SSNIPreprocessor``. Built-in names:

* ``diffpure`` -- constant noise level ``t*`` (Nie et al. 2022), the base method;
* ``ssni-n`` -- SSNI with sigmoid reweighting;
* ``ssni-l`` -- SSNI with linear reweighting;
* ``gns``, ``gns+ssni-n``, ``gns+ssni-l`` -- GNS (Lee & Kim 2023) stages with constant / SSNI-N / SSNI-L noise;
* ``gdmp``, ``gdmp+ssni-n``, ``gdmp+ssni-l`` -- GDMP (Wang et al. 2022), official CIFAR-10 setting (``t* = 36``,
  4 guided rounds), with constant / SSNI-N / SSNI-L noise.

Settings passed to :func:`make` override a preset's (e.g. ``t_star``, ``gdmp_scale`` for small images).

Third-party packages add names through the entry-point group ``art_ssni.defences`` (each entry point loads a
factory with the signature above), e.g. in their ``pyproject.toml``::

    [project.entry-points."art_ssni.defences"]
    my-defence = "my_package.defences:make_my_defence"

Names are matched exactly (no prefixes, no case folding).
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any, Protocol

from art_ssni.diffusion.model import DiffusionModel
from art_ssni.preprocessor import SSNIPreprocessor
from art_ssni.ssni.reference import ReferenceStats

__all__ = ["ENTRY_POINT_GROUP", "DefenceFactory", "available", "make", "register"]

ENTRY_POINT_GROUP = "art_ssni.defences"


class DefenceFactory(Protocol):
    def __call__(
        self, model: DiffusionModel, *, reference: ReferenceStats | None = None, **overrides: Any
    ) -> SSNIPreprocessor: ...


def _preset(**preset: Any) -> DefenceFactory:
    """A factory building an :class:`SSNIPreprocessor` from fixed settings; ``overrides`` win over the preset."""

    def factory(
        model: DiffusionModel, *, reference: ReferenceStats | None = None, **overrides: Any
    ) -> SSNIPreprocessor:
        settings = {**preset, **overrides}
        if settings.get("reweight") == "constant":
            reference = None  # DiffPure never reads reference statistics
        return SSNIPreprocessor(model, reference=reference, **settings)

    factory.__doc__ = f"SSNIPreprocessor preset {preset}."
    return factory


_REWEIGHT_SUFFIX = {"": "constant", "+ssni-n": "sigmoid", "+ssni-l": "linear"}
#: base presets: GNS with Lee & Kim's CIFAR-10 stages; GDMP with the official CIFAR-10 setting (t* = 36, 4 rounds).
_BASE_PRESETS: dict[str, dict[str, Any]] = {
    "gns": {"base": "gns"},
    "gdmp": {"base": "gdmp", "t_star": 36, "gdmp_iterations": 4},
}
_BUILTIN: dict[str, DefenceFactory] = {
    "diffpure": _preset(reweight="constant"),
    "ssni-n": _preset(reweight="sigmoid"),
    "ssni-l": _preset(reweight="linear"),
    **{
        base + suffix: _preset(reweight=reweight, **settings)
        for base, settings in _BASE_PRESETS.items()
        for suffix, reweight in _REWEIGHT_SUFFIX.items()
    },
}
_REGISTERED: dict[str, DefenceFactory] = {}


def register(name: str, factory: DefenceFactory, *, overwrite: bool = False) -> None:
    """Register ``factory`` under the exact ``name`` (for code that cannot declare an entry point)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}.")
    if not callable(factory):
        raise TypeError(f"factory must be callable, got {type(factory).__name__}.")
    if not overwrite and name in _all():
        raise ValueError(f"name {name!r} is already registered; pass overwrite=True to replace it.")
    _REGISTERED[name] = factory


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
