"""art-ssni: Sample-Specific Noise Injection (ICML 2025) diffusion purification as an ART defence.

The names users create and call. Those that need ART (:class:`SSNIPreprocessor`, the attacks,
:func:`make_defence`, :func:`robust_accuracy`) and :mod:`zoo` are imported on first use, so ``import art_ssni`` and
the pure-torch layers never load ART; everything else lives in its subpackage
(``art_ssni.diffusion``, ``art_ssni.ssni``, ``art_ssni.attacks``, ``art_ssni.evaluation`` ...).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from art_ssni._version import __version__
from art_ssni.diffusion.model import DiffusionModel
from art_ssni.ssni.bases import GDMP, GNS, DiffPure
from art_ssni.ssni.purifier import SSNIPurifier
from art_ssni.ssni.reference import ReferenceStats

if TYPE_CHECKING:
    from art_ssni import zoo
    from art_ssni.attacks import PGDEOT, ScoreAwarePGD
    from art_ssni.defences import make as make_defence
    from art_ssni.evaluation import robust_accuracy
    from art_ssni.preprocessor import SSNIPreprocessor

__all__ = [
    "GDMP",
    "GNS",
    "PGDEOT",
    "DiffPure",
    "DiffusionModel",
    "ReferenceStats",
    "SSNIPreprocessor",
    "SSNIPurifier",
    "ScoreAwarePGD",
    "__version__",
    "make_defence",
    "robust_accuracy",
    "zoo",
]

#: lazily imported name -> (module, attribute or None for the module itself)
_LAZY = {
    "SSNIPreprocessor": ("art_ssni.preprocessor", "SSNIPreprocessor"),
    "PGDEOT": ("art_ssni.attacks", "PGDEOT"),
    "ScoreAwarePGD": ("art_ssni.attacks", "ScoreAwarePGD"),
    "make_defence": ("art_ssni.defences", "make"),
    "robust_accuracy": ("art_ssni.evaluation", "robust_accuracy"),
    "zoo": ("art_ssni.zoo", None),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'art_ssni' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    return module if attribute is None else getattr(module, attribute)
