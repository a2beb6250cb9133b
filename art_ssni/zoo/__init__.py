"""Layer 7: the shipped model zoo -- small digits models trained by :func:`train_zoo`, loaded offline.

>>> from art_ssni import zoo
>>> models = zoo.load("digits")                       # DiffusionModel + classifier + data split + defaults
>>> models.x_test.shape, models.t_star, models.eps    # ((450, 1, 8, 8), 200, 0.2)
>>> pre, clf = zoo.defended("ssni-n", sampler="ddim", steps=10)   # the zoo's defence behind the zoo's classifier

Weights are read from the package folder ``art_ssni/zoo/weights/<name>/`` (safetensors and JSON only, no pickle,
no download). ``docs/zoo.md`` documents the split, the architectures and the measured metrics.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from art_ssni.diffusion.model import DiffusionModel
from art_ssni.ssni.reference import ReferenceStats
from art_ssni.zoo.classifier import DigitsCNN, load_classifier
from art_ssni.zoo.data import load_digits_split
from art_ssni.zoo.files import ZOO_CONFIG, ZOO_METRICS, ZOO_REFERENCE

if TYPE_CHECKING:
    from art.estimators.classification import PyTorchClassifier

    from art_ssni.preprocessor import SSNIPreprocessor
    from art_ssni.zoo.train import train_zoo

__all__ = [
    "DigitsCNN",
    "ZooModels",
    "available",
    "defended",
    "load",
    "load_digits_split",
    "metrics",
    "reference_stats",
    "train_zoo",
    "weights_dir",
]

_WEIGHTS_ROOT = Path(__file__).resolve().parent / "weights"
_ZOO = ("digits",)


@dataclass(frozen=True, eq=False)
class ZooModels:
    """A loaded zoo entry.

    :param name: the zoo name (e.g. ``"digits"``).
    :param diffusion: the :class:`~art_ssni.diffusion.DiffusionModel` (frozen, ``eval()``).
    :param classifier: the classifier ``torch.nn.Module`` in ``eval()`` mode: ``(B, 1, 8, 8)`` pixels in ``[0, 1]``
        → ``(B, nb_classes)`` logits.
    :param clip_values: pixel range of the inputs, ``(0.0, 1.0)``.
    :param x_train: ``(N_train, 1, 8, 8)`` float32 training images in ``[0, 1]`` (NCHW).
    :param y_train: ``(N_train,)`` int64 labels.
    :param x_test: ``(N_test, 1, 8, 8)`` float32 test images in ``[0, 1]``.
    :param y_test: ``(N_test,)`` int64 labels.
    :param t_star: the zoo's default DiffPure / SSNI base noise level ``t*`` (200: where a constant level costs
        clean accuracy and SSNI's trade-off shows; docs/frontier.md, "The zoo's default t*").
    :param eps: the zoo's default ℓ∞ attack budget (in ``[0, 1]`` pixel units).
    :param nb_classes: number of classes.
    :param reference: the shipped :class:`~art_ssni.ssni.ReferenceStats` (clean training score norms).
    :param score_steps: ``T'`` the reference statistics were computed with.
    :param path: the folder the weights were read from.
    """

    name: str
    diffusion: DiffusionModel
    classifier: torch.nn.Module
    clip_values: tuple[float, float]
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    t_star: int
    eps: float
    nb_classes: int
    reference: ReferenceStats
    score_steps: int
    path: Path


def available() -> list[str]:
    """Names of the zoo entries shipped with the package."""
    return list(_ZOO)


def _check_name(name: str) -> str:
    if not isinstance(name, str) or name not in _ZOO:
        raise ValueError(f"name must be one of {available()}, got {name!r}.")
    return name


def weights_dir(name: str = "digits") -> Path:
    """The package folder holding the shipped files of zoo entry ``name``."""
    return _WEIGHTS_ROOT / _check_name(name)


def _resolve(name: str, path: str | os.PathLike[str] | None) -> Path:
    _check_name(name)
    root = weights_dir(name) if path is None else Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"path: zoo folder {str(root)!r} does not exist.")
    return root


def reference_stats(name: str = "digits", *, path: str | os.PathLike[str] | None = None) -> ReferenceStats:
    """The shipped :class:`~art_ssni.ssni.ReferenceStats` of zoo entry ``name`` (or of the folder ``path``)."""
    return ReferenceStats.from_json(_resolve(name, path) / ZOO_REFERENCE)


def metrics(name: str = "digits", *, path: str | os.PathLike[str] | None = None) -> dict:
    """The metrics measured when zoo entry ``name`` was trained (``metrics.json``)."""
    return json.loads((_resolve(name, path) / ZOO_METRICS).read_text())


def load(
    name: str = "digits", device: str | torch.device = "cpu", *, path: str | os.PathLike[str] | None = None
) -> ZooModels:
    """Load a zoo entry offline: diffusion model, classifier, data split and defaults.

    :param name: one of :func:`available`.
    :param device: torch device for both models.
    :param path: read the files from this folder (as written by :func:`train_zoo`) instead of the package's.
    :raises ValueError: for an unknown ``name`` (the message lists the valid names).
    """
    root = _resolve(name, path)
    config_file = root / ZOO_CONFIG
    if not config_file.is_file():
        raise FileNotFoundError(f"path: zoo config {str(config_file)!r} does not exist.")
    try:  # a corrupt or incomplete zoo.json is one error naming the file
        config = json.loads(config_file.read_text())
        split = config["split"]
        seed, test_size = int(split["random_state"]), split["test_size"]
        lo, hi = (float(v) for v in config["clip_values"])
        t_star, eps = int(config["t_star"]), float(config["eps"])
        nb_classes, score_steps = int(config["nb_classes"]), int(config["score_steps"])
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, KeyError, TypeError, ValueError) as err:
        raise ValueError(
            f"path: {str(config_file)!r} is not a valid zoo config ({type(err).__name__}: {err})."
        ) from err
    x_train, y_train, x_test, y_test = load_digits_split(seed=seed, test_size=test_size)
    diffusion = DiffusionModel.from_pretrained(root).to(device)
    classifier = load_classifier(root, device=device)
    return ZooModels(
        name=name,
        diffusion=diffusion,
        classifier=classifier,
        clip_values=(lo, hi),
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        t_star=t_star,
        eps=eps,
        nb_classes=nb_classes,
        reference=ReferenceStats.from_json(root / ZOO_REFERENCE),
        score_steps=score_steps,
        path=root,
    )


def defended(
    defence: str = "ssni-n",
    *,
    models: ZooModels | None = None,
    name: str = "digits",
    device: str = "cpu",
    **overrides: Any,
) -> tuple[SSNIPreprocessor | None, PyTorchClassifier]:
    """The zoo's defence ``defence`` behind the zoo's classifier: ``(preprocessor, ART classifier)``.

    The one home of "a named defence on the zoo" for the study scripts, benchmarks and examples. The defence is
    :func:`art_ssni.defences.make` on the zoo's diffusion model with the zoo's defaults -- its ``reference``
    statistics (and their score bank), ``score_steps`` and ``t_star`` (unless the preset fixes its own, as GDMP's
    36) -- and the preset sized for the zoo's images (:func:`art_ssni.defences.sized_for`: GDMP's guidance scale).
    ``overrides`` win over all of these (e.g. ``sampler="ddim", steps=10, seed=0, eot_samples=4``).

    >>> pre, clf = zoo.defended("ssni-n", sampler="ddim", steps=10, seed=0)
    >>> plain = zoo.defended("none")[1]                                  # the undefended classifier
    >>> pre, clf = zoo.defended("diffpure", models=dataclasses.replace(zoo.load(), t_star=100))

    :param defence: a name of :func:`art_ssni.defences.available`, or ``"none"`` (no preprocessor).
    :param models: a loaded zoo entry (e.g. with another ``t_star``); ``None`` loads ``name`` on ``device``.
    :param name: the zoo entry loaded when ``models`` is ``None``.
    :param device: ``"cpu"`` or ``"cuda"``: where ``models`` live and the ART ``device_type`` of both objects.
    :param overrides: :class:`~art_ssni.SSNIPreprocessor` keywords.
    :return: the :class:`~art_ssni.SSNIPreprocessor` (``None`` for ``"none"``) and an ART ``PyTorchClassifier``
        (cross-entropy loss, the zoo's ``input_shape``, ``nb_classes`` and ``clip_values``) with it as its
        preprocessing defence. Imports ART on first use (loading the zoo never does).
    """
    from art_ssni import defences
    from art_ssni._common import art_device_type
    from art_ssni.evaluation.compare import defended_classifier

    if not isinstance(defence, str) or (defence != "none" and defence not in defences.available()):
        raise ValueError(f"defence must be 'none' or one of {defences.available()}, got {defence!r}.")
    if models is not None and not isinstance(models, ZooModels):
        raise TypeError(f"models must be a ZooModels (zoo.load(...)) or None, got {type(models).__name__}.")
    zoo_models = load(name, device) if models is None else models
    device_type = art_device_type(device)
    input_shape = tuple(int(d) for d in zoo_models.x_test.shape[1:])
    pre = None
    if defence != "none":
        try:
            preset_t_star = defences.spec(defence).t_star
        except ValueError:  # registered without a spec: the zoo's t* is the only one there is
            preset_t_star = None
        settings: dict[str, Any] = {"score_steps": zoo_models.score_steps, "device_type": device_type}
        if preset_t_star is None:
            settings["t_star"] = zoo_models.t_star
        settings.update(defences.sized_for(defence, input_shape))
        settings.update(overrides)
        reference = settings.pop("reference", zoo_models.reference)
        pre = defences.make(defence, zoo_models.diffusion, reference=reference, **settings)
    elif overrides:
        raise ValueError(f"overrides: defence 'none' has no preprocessor to pass {sorted(overrides)} to.")
    clf = defended_classifier(
        zoo_models.classifier, pre, input_shape=input_shape, nb_classes=zoo_models.nb_classes,
        clip_values=zoo_models.clip_values, device_type=device_type,
    )  # fmt: skip
    return pre, clf


def __getattr__(name: str) -> Any:
    """``train_zoo`` is imported on first use: loading the zoo never imports the trainer (ART, tqdm, training)."""
    if name == "train_zoo":
        from art_ssni.zoo.train import train_zoo

        return train_zoo
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
