"""Layer 6: RobustBench compatibility -- any RobustBench classifier behind an SSNI / DiffPure purifier.

Needs the optional extra: ``pip install 'art-ssni[robustbench]'`` (robustbench, pyautoattack, torchvision; see
``docs/robustbench.md`` for the torch / torchvision pair that imports on your machine).

* :func:`import_robustbench` -- imports ``robustbench`` 1.1.x with today's packages: it imports ``autoattack``,
  which PyPI ships as ``pyautoattack`` (aliased here), and ``pkg_resources``, which setuptools >= 81 no longer
  ships (a minimal stand-in is provided when it is missing). Nothing is edited on disk.
* :func:`load_classifier` -- a RobustBench model by name, offline, from RobustBench's ``model_dir`` layout
  ``{model_dir}/{dataset}/{threat_model}/{name}.pt``, weights read with ``torch.load(weights_only=True)``; a
  missing file is an error naming the expected path (never a download).
* :func:`load_defended_model` -- that classifier behind a registered defence (:mod:`art_ssni.defences`) as one
  ``torch.nn.Module`` (:class:`DefendedModel`, inputs in ``[0, 1]``), usable by RobustBench's ``clean_accuracy``
  and by AutoAttack; :func:`as_art_classifier` -- the same as an ART ``PyTorchClassifier`` with the
  :class:`~art_ssni.SSNIPreprocessor` in ``preprocessing_defences`` (for ART's and art-ssni's attacks).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types
import warnings
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any
from unittest import mock

import torch

from art_ssni import defences as defence_registry
from art_ssni._common import art_device_type
from art_ssni.diffusion.model import DiffusionModel
from art_ssni.preprocessor import SSNIPreprocessor
from art_ssni.ssni.reference import ReferenceStats

__all__ = [
    "NB_CLASSES",
    "DefendedModel",
    "as_art_classifier",
    "defend",
    "expected_weights_paths",
    "import_robustbench",
    "load_classifier",
    "load_defended_model",
]

#: classes of RobustBench's data sets
NB_CLASSES = {"cifar10": 10, "cifar100": 100, "imagenet": 1000}

_EXTRA_HINT = "install the optional dependencies with: pip install 'art-ssni[robustbench]'"


def _alias_autoattack() -> None:
    """Make ``import autoattack`` (and its submodules) resolve to PyPI's ``pyautoattack`` when needed."""
    if "autoattack" in sys.modules or importlib.util.find_spec("autoattack") is not None:
        return
    try:
        package = importlib.import_module("pyautoattack")
    except ImportError as err:
        raise ImportError(f"robustbench needs AutoAttack (the pyautoattack package); {_EXTRA_HINT}.") from err
    importlib.import_module("pyautoattack.state")
    sys.modules["autoattack"] = package
    for name, module in list(sys.modules.items()):
        if name.startswith("pyautoattack."):
            sys.modules.setdefault("autoattack." + name[len("pyautoattack.") :], module)


def _pkg_resources_stand_in() -> None:
    """Provide ``pkg_resources.resource_filename`` (all robustbench uses) when setuptools no longer ships it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            importlib.import_module("pkg_resources")
        return
    except ImportError:
        pass
    module = types.ModuleType("pkg_resources")

    def resource_filename(package: str, resource: str) -> str:
        module = importlib.import_module(package)
        anchor = package if hasattr(module, "__path__") else (module.__package__ or package)
        return str(resources.files(anchor) / resource)

    module.resource_filename = resource_filename  # type: ignore[attr-defined]
    module.__doc__ = "art-ssni stand-in for the removed setuptools pkg_resources (resource_filename only)."
    sys.modules["pkg_resources"] = module


def import_robustbench() -> types.ModuleType:
    """Import and return the ``robustbench`` package, working around its stale imports (see the module docs).

    :raises ImportError: when robustbench (or AutoAttack, or a torchvision matching torch) is not installed; the
        message names the ``art-ssni[robustbench]`` extra.
    """
    if importlib.util.find_spec("robustbench") is None:
        raise ImportError(f"robustbench is not installed; {_EXTRA_HINT}.")
    _alias_autoattack()
    _pkg_resources_stand_in()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module("robustbench")
    except ImportError:
        raise
    except Exception as err:  # e.g. a torchvision built for another torch fails at import with a RuntimeError
        raise ImportError(
            f"robustbench failed to import ({type(err).__name__}: {err}); torch and torchvision must be a matching "
            f"pair (e.g. torch 2.14.1 + torchvision 0.29.1); {_EXTRA_HINT}."
        ) from err


def _enums(dataset: str, threat_model: str) -> tuple[Any, Any, dict[str, Any]]:
    import_robustbench()
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    try:
        dataset_ = BenchmarkDataset(dataset)
    except ValueError as err:
        raise ValueError(f"dataset must be one of {[d.value for d in BenchmarkDataset]}, got {dataset!r}.") from err
    try:
        threat_ = ThreatModel(threat_model)
    except ValueError as err:
        raise ValueError(
            f"threat_model must be one of {[t.value for t in ThreatModel]}, got {threat_model!r}."
        ) from err
    return dataset_, threat_, model_dicts[dataset_].get(threat_, {})


def expected_weights_paths(
    model_name: str,
    *,
    dataset: str = "cifar10",
    threat_model: str = "Linf",
    model_dir: str | os.PathLike[str] = "./models",
) -> list[Path]:
    """The file(s) RobustBench reads for ``model_name``: ``{model_dir}/{dataset}/{threat_model}/{name}.pt``
    (ensembles: ``{name}.pt_m0.pt``, ``{name}.pt_m1.pt``, ...)."""
    dataset_, threat_, models = _enums(dataset, threat_model)
    if model_name not in models:
        raise ValueError(
            f"model_name: {model_name!r} is not a RobustBench {dataset_.value} {threat_.value} model "
            f"(known: {sorted(models)})."
        )
    path = Path(model_dir) / dataset_.value / threat_.value.replace("_3d", "") / f"{model_name}.pt"
    ids = models[model_name]["gdrive_id"]
    if isinstance(ids, list):
        return [Path(f"{path}_m{i}.pt") for i in range(len(ids))]
    return [path]


class _WeightsOnlyTorch(types.ModuleType):
    """``torch`` as robustbench sees it during :func:`load_classifier`: ``load`` forces ``weights_only=True``."""

    def __init__(self) -> None:
        super().__init__("torch")

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)

    @staticmethod
    def load(f: Any, map_location: Any = None, **kwargs: Any) -> Any:
        kwargs["weights_only"] = True
        return torch.load(f, map_location=map_location, **kwargs)


@contextmanager
def _weights_only(rb_utils: types.ModuleType) -> Any:
    with mock.patch.object(rb_utils, "torch", _WeightsOnlyTorch()):
        yield


def load_classifier(
    model_name: str,
    *,
    dataset: str = "cifar10",
    threat_model: str = "Linf",
    model_dir: str | os.PathLike[str] = "./models",
) -> torch.nn.Module:
    """A RobustBench classifier (``eval()`` mode, inputs in ``[0, 1]``, on the CPU), loaded offline.

    RobustBench's own ``load_model`` builds the architecture and fixes the checkpoint's keys; here the weights
    file must already exist (no download is attempted) and is read with ``torch.load(..., weights_only=True)``
    (no arbitrary unpickling). Models that RobustBench serves through ``timm`` / the Hugging Face hub are not
    supported (they always download).

    :param model_name: a RobustBench model name, e.g. ``"Standard"`` (WideResNet-28-10).
    :param dataset: ``"cifar10"``, ``"cifar100"`` or ``"imagenet"``.
    :param threat_model: ``"Linf"``, ``"L2"`` or ``"corruptions"``.
    :param model_dir: RobustBench's model folder.
    :raises FileNotFoundError: naming the expected path(s) of the weights.
    """
    paths = expected_weights_paths(model_name, dataset=dataset, threat_model=threat_model, model_dir=model_dir)
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"model_dir: weights of RobustBench model {model_name!r} not found; expected {missing} "
            f"(RobustBench layout {{model_dir}}/{{dataset}}/{{threat_model}}/{{name}}.pt, a dict with 'state_dict'). "
            "Nothing is downloaded: copy the file there."
        )
    from robustbench import utils as rb_utils

    with _weights_only(rb_utils), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = rb_utils.load_model(model_name, model_dir=str(model_dir), dataset=dataset, threat_model=threat_model)
    return model.eval()


class DefendedModel(torch.nn.Module):
    """A purifier followed by a classifier, as one module: ``(B, C, H, W)`` pixels in ``[0, 1]`` → logits.

    Every call purifies with fresh randomness (a randomized defence: evaluate it with EOT, see
    :mod:`art_ssni.leaderboard`). Gradients flow through the purifier as its ``gradient`` mode says. The module
    runs on the device it was built for (``preprocessor.device``); inputs on other devices are moved there and
    the logits are returned on the input's device.

    :param classifier: ``(B, C, H, W)`` in ``[0, 1]`` → ``(B, K)`` logits.
    :param preprocessor: the :class:`~art_ssni.SSNIPreprocessor` (``clip_values`` ``(0, 1)``).
    """

    def __init__(self, classifier: torch.nn.Module, preprocessor: SSNIPreprocessor) -> None:
        super().__init__()
        if not isinstance(classifier, torch.nn.Module):
            raise TypeError(f"classifier must be a torch.nn.Module, got {type(classifier).__name__}.")
        if not isinstance(preprocessor, SSNIPreprocessor):
            raise TypeError(f"preprocessor must be an SSNIPreprocessor, got {type(preprocessor).__name__}.")
        if tuple(float(v) for v in preprocessor.clip_values) != (0.0, 1.0):
            raise ValueError(f"preprocessor.clip_values must be (0, 1), got {preprocessor.clip_values!r}.")
        self.classifier = classifier.to(preprocessor.device).eval()
        self.diffusion = preprocessor.model  # a submodule: state_dict / eval() / parameters() include it
        self.preprocessor = preprocessor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` in ``[0, 1]`` → ``(B, K)`` logits of the purified inputs."""
        purified, _ = self.preprocessor.forward(x.to(self.preprocessor.device))
        return self.classifier(purified).to(x.device)


def _diffusion(diffusion: DiffusionModel | str | os.PathLike[str]) -> DiffusionModel:
    if isinstance(diffusion, DiffusionModel):
        return diffusion
    if isinstance(diffusion, (str, os.PathLike)):  # a local folder or a Hub repo id (huggingface_hub's cache)
        return DiffusionModel.from_pretrained(diffusion)
    raise TypeError(
        "diffusion must be a DiffusionModel, a local diffusers folder or a Hugging Face Hub repo id, "
        f"got {type(diffusion).__name__}."
    )


def defend(
    classifier: torch.nn.Module,
    diffusion: DiffusionModel | str | os.PathLike[str],
    *,
    defence: str = "ssni-n",
    reference: ReferenceStats | None = None,
    device: str = "cpu",
    **ssni_kwargs: Any,
) -> DefendedModel:
    """Any ``[0, 1]``-input classifier behind the registered ``defence`` (no RobustBench needed).

    :param classifier: ``(B, C, H, W)`` in ``[0, 1]`` → logits.
    :param diffusion: a :class:`~art_ssni.DiffusionModel`, a local diffusers folder or a Hub repo id such as
        ``"google/ddpm-cifar10-32"`` (see :meth:`~art_ssni.DiffusionModel.from_pretrained`; for a revision, a
        cache folder or half precision, load it with that method and pass the model).
    :param defence: a name of :func:`art_ssni.defences.available` (``"diffpure"``, ``"ssni-n"``, ``"ssni-l"``...).
    :param reference: SSNI's reference statistics (or fit later: ``model.preprocessor.fit(x_clean)``).
    :param device: ``"cpu"`` or ``"cuda"``.
    :param ssni_kwargs: settings of the defence (``t_star``, ``sampler``, ``steps``, ``gradient``, ``seed``...).
    """
    device_type = art_device_type(device)
    pre = defence_registry.make(
        defence,
        _diffusion(diffusion),
        reference=reference,
        device_type=device_type,
        clip_values=(0.0, 1.0),
        **ssni_kwargs,
    )
    return DefendedModel(classifier, pre)


def load_defended_model(
    model_name: str,
    *,
    dataset: str = "cifar10",
    threat_model: str = "Linf",
    model_dir: str | os.PathLike[str] = "./models",
    diffusion: DiffusionModel | str | os.PathLike[str],
    reference: ReferenceStats | None = None,
    defence: str = "ssni-n",
    device: str = "cpu",
    **ssni_kwargs: Any,
) -> DefendedModel:
    """RobustBench model ``model_name`` behind an SSNI (or other registered) purifier, as one ``nn.Module``.

    >>> model = load_defended_model("Standard", model_dir="./models", diffusion="google/ddpm-cifar10-32",
    ...                             reference=ReferenceStats.from_json("reference.json"), t_star=100)
    >>> robustbench.utils.clean_accuracy(model, x_test, y_test, device=torch.device("cpu"))

    :param model_name: RobustBench model name (weights at ``{model_dir}/{dataset}/{threat_model}/{name}.pt``).
    :param dataset: ``"cifar10"``, ``"cifar100"`` or ``"imagenet"`` (the diffusion model must match its size).
    :param threat_model: RobustBench threat model of the classifier (``"Linf"``, ``"L2"``, ``"corruptions"``).
    :param model_dir: RobustBench's model folder.
    :param diffusion: a :class:`~art_ssni.DiffusionModel`, a local diffusers folder or a Hugging Face Hub repo id
        (e.g. ``"google/ddpm-cifar10-32"``, read from huggingface_hub's cache; ``HF_HUB_OFFLINE=1`` never downloads).
    :param reference: SSNI's reference statistics.
    :param defence: registered defence name (default SSNI-N).
    :param device: ``"cpu"`` or ``"cuda"``.
    :param ssni_kwargs: defence settings passed to :func:`art_ssni.defences.make`.
    """
    classifier = load_classifier(model_name, dataset=dataset, threat_model=threat_model, model_dir=model_dir)
    return defend(classifier, diffusion, defence=defence, reference=reference, device=device, **ssni_kwargs)


def as_art_classifier(
    model_name: str,
    *,
    dataset: str = "cifar10",
    threat_model: str = "Linf",
    model_dir: str | os.PathLike[str] = "./models",
    diffusion: DiffusionModel | str | os.PathLike[str],
    reference: ReferenceStats | None = None,
    defence: str = "ssni-n",
    device: str = "cpu",
    **ssni_kwargs: Any,
) -> Any:
    """The same defended RobustBench model as an ART ``PyTorchClassifier`` (the purifier as preprocessing defence).

    Input shape ``(C, S, S)`` of the diffusion model, ``clip_values=(0, 1)``, cross-entropy loss. Arguments as
    :func:`load_defended_model`.
    """
    from art_ssni.evaluation.compare import defended_classifier

    model = load_defended_model(
        model_name,
        dataset=dataset,
        threat_model=threat_model,
        model_dir=model_dir,
        diffusion=diffusion,
        reference=reference,
        defence=defence,
        device=device,
        **ssni_kwargs,
    )
    unet = model.preprocessor.model
    return defended_classifier(
        model.classifier,
        model.preprocessor,
        input_shape=(unet.in_channels, unet.sample_size, unet.sample_size),
        nb_classes=NB_CLASSES[dataset],
        clip_values=(0.0, 1.0),
        device_type=art_device_type(device),
    )
