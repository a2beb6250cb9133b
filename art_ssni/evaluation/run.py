"""What ``art-ssni evaluate`` does, as a function: :func:`evaluate` compares named defences and returns the results.

The command line only parses its options, calls :func:`evaluate`, prints the table and draws the plots (as
``art-ssni leaderboard`` does with :func:`art_ssni.leaderboard.leaderboard`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from art_ssni import defences as defence_registry
from art_ssni._common import art_device_type, is_int, torch_device
from art_ssni.attacks.protocol import AttackProtocol
from art_ssni.diffusion.model import DiffusionModel
from art_ssni.evaluation.compare import compare_defences
from art_ssni.evaluation.records import array_fingerprint, module_fingerprint, run_record
from art_ssni.preprocessor import SSNIPreprocessor
from art_ssni.ssni.reference import ReferenceStats

__all__ = [
    "ADVERSARIAL_FOLDER",
    "DEFAULTS",
    "DEFENCE_DEFAULTS",
    "default_protocol",
    "defence_names",
    "defence_settings",
    "evaluate",
    "with_base",
]

#: the folder of a run's stored adversarial examples, inside its ``out``
ADVERSARIAL_FOLDER = "adversarial"

#: the defaults of :func:`evaluate` and ``art-ssni evaluate`` that are not the protocol's (budget:
#: ``BUDGETS["evaluate"]`` of :mod:`art_ssni.attacks.protocol`, sized to finish in minutes on 2 CPU cores)
DEFAULTS: dict[str, Any] = {
    "defences": ("none", "diffpure", "ssni-n", "ssni-l"),
    "attacks": ("pgd-eot", "score-aware"),
    "n_images": 32,
    "budget": "evaluate",
}

#: the purifier settings of :func:`evaluate` (each defence factory's keyword arguments)
DEFENCE_DEFAULTS: dict[str, Any] = {
    "bias": 5.0,
    "tau": None,
    "sampler": "ddim",
    "steps": 10,
    "eta": 1.0,
    "gradient": "exact",
    "checkpoint": False,
    "surrogate_steps": 10,
}


def default_protocol(eps: float, **overrides: Any) -> AttackProtocol:
    """``art-ssni evaluate``'s protocol at radius ``eps``: its attacks and the ``"evaluate"`` budget; ``overrides``
    (not ``None``) win."""
    return AttackProtocol.from_budget(DEFAULTS["budget"], eps=eps, **{"attacks": DEFAULTS["attacks"], **overrides})


def with_base(name: str, base: str) -> str:
    """``diffpure`` / ``ssni-n`` / ``ssni-l`` on another base: its registered name (``gns``, ``gns+ssni-n`` ...)."""
    if base == "diffpure" or name not in ("diffpure", "ssni-n", "ssni-l"):
        return name
    return base if name == "diffpure" else f"{base}+{name}"


def defence_settings(
    name: str, x_shape: tuple[int, ...], zoo_t_star: int, t_star: int | None, defence_kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    """The factory keyword arguments of the registered defence ``name`` in an evaluation.

    ``defence_kwargs`` (``sampler``, ``steps`` ...; ``steps`` dropped for the DDPM sampler), ``t_star`` (the preset's
    own ``t*`` -- GDMP: 36 -- wins over the zoo's unless ``t_star`` is given) and GDMP's image-size-adjusted guidance
    scale (:func:`art_ssni.defences.sized_for`).
    """
    spec = defence_registry.spec(name)
    kwargs = {**DEFENCE_DEFAULTS, **dict(defence_kwargs)}
    if kwargs.get("sampler") != "ddim":
        kwargs["steps"] = None
    kwargs["t_star"] = int(t_star) if t_star is not None else (spec.t_star or zoo_t_star)
    return {**kwargs, **defence_registry.sized_for(name, x_shape)}


def defence_names(defences: Sequence[str], base: str = "diffpure") -> list[str]:
    """The registry names ``evaluate`` runs for ``defences`` on ``base`` (``"none"`` stays); a ``ValueError``
    names the unknown ones."""
    names = [with_base(d, base) for d in defences]
    known = defence_registry.available()
    bad = [d for d in names if d != "none" and d not in known]
    if bad or not names:
        raise ValueError(f"defences must be among {['none', *known]}, got {bad or names}.")
    return names


def evaluate(
    models: Any,
    *,
    protocol: AttackProtocol | None = None,
    defences: Sequence[str] = DEFAULTS["defences"],
    base: str = "diffpure",
    n_images: int = DEFAULTS["n_images"],
    t_star: int | None = None,
    defence_kwargs: Mapping[str, Any] | None = None,
    diffusion: DiffusionModel | None = None,
    classifier: torch.nn.Module | None = None,
    nb_classes: int | None = None,
    x: np.ndarray | None = None,
    y: np.ndarray | None = None,
    x_train: np.ndarray | None = None,
    reference: ReferenceStats | None = None,
    device: str = "cpu",
    out: str | os.PathLike[str] | None = None,
    progress: Callable[[str], None] | None = None,
    world: Any = None,
) -> dict[str, Any]:
    """Compare ``defences`` on the first ``n_images`` test images under ``protocol``; the work of ``art-ssni evaluate``.

    Models and data default to those of ``models``, a zoo entry (``art_ssni.zoo.load("digits")``; anything with
    its fields ``name``, ``diffusion``, ``classifier``, ``nb_classes``, ``clip_values``, ``x_test``, ``y_test``,
    ``reference``, ``t_star``, ``eps``); pass ``diffusion``, ``classifier`` (with ``nb_classes``), ``x`` / ``y``
    and ``reference`` to use your own. Defences that need reference statistics get ``reference``,
    the zoo's (with the zoo's model and data), or statistics fitted on ``x_train``. Each defence keeps its own
    preset ``t*`` (e.g. GDMP's 36) unless ``t_star`` is given; the others get the zoo's ``t*``.

    :param protocol: attacks, budget, selection and judging (:class:`AttackProtocol`); ``None``:
        :func:`default_protocol` at the zoo's ``eps``. Every defence faces the same attack suite.
    :param defence_kwargs: purifier settings (keys of :data:`DEFENCE_DEFAULTS`: ``bias``, ``tau``, ``sampler``,
        ``steps``, ``eta``, ``gradient``, ``checkpoint``, ``surrogate_steps``), over :data:`DEFENCE_DEFAULTS`.
    :param out: a folder: every defence's adversarial examples are stored in ``out/adversarial/`` (safetensors),
        so that ``art-ssni rejudge`` can re-judge them under another protocol without re-attacking.
    :param world: this process's place in a sharded run (``art_ssni.leaderboard.distributed.World``: ``rank``,
        ``size``, ``all_gather``; ``art-ssni evaluate --processes N`` passes it); ``None``: one process. Rank ``r``
        evaluates the defences ``names[r::size]`` and every rank returns all of them: each defence's draws are
        seeded by the protocol, not the rank, so the numbers are those of one process.
    :return: the JSON-ready results: ``settings`` (with ``protocol``), the run record
        (:func:`~art_ssni.evaluation.records.run_record`: ``schema_version``, ``timestamp``, ``git_commit``,
        ``machine``, ``versions``, ``wall_seconds``), ``fingerprints`` and ``defences`` (one
        :class:`~art_ssni.evaluation.compare.DefenceEvaluation` dict each).
    :raises ValueError: on a bad setting, before any model is loaded.
    """
    # 1. check every setting before anything is loaded or run
    if protocol is not None and not isinstance(protocol, AttackProtocol):
        raise TypeError(f"protocol must be an art_ssni AttackProtocol or None, got {type(protocol).__name__}.")
    defence_kwargs = dict(defence_kwargs or {})
    unknown = sorted(set(defence_kwargs) - set(DEFENCE_DEFAULTS))
    if unknown:
        raise ValueError(f"defence_kwargs: unknown keys {unknown}; the keys are {list(DEFENCE_DEFAULTS)}.")
    names = defence_names(defences, base)
    if classifier is not None and (not is_int(nb_classes) or nb_classes is None or nb_classes < 2):
        raise ValueError(
            f"nb_classes: give the number of classes of your classifier (an int >= 2), got {nb_classes!r}."
        )
    if (x is None) != (y is None):
        raise ValueError("x and y must be given together.")
    if not is_int(n_images) or n_images < 1:
        raise ValueError(f"n_images must be an int >= 1, got {n_images!r}.")
    device = torch_device(device)
    # 2. models and data
    own_models = diffusion is not None or x is not None
    diffusion = diffusion if diffusion is not None else models.diffusion
    if classifier is None:
        classifier, nb_classes = models.classifier, models.nb_classes
    assert nb_classes is not None
    if x is None:
        x, y = models.x_test, models.y_test
    assert y is not None
    x = np.asarray(x, dtype=np.float32)[:n_images]
    y = np.asarray(y, dtype=np.int64)[:n_images]
    if len(x) != len(y):
        raise ValueError(f"x and y: {len(x)} images but {len(y)} labels.")
    protocol = protocol if protocol is not None else default_protocol(float(models.eps))
    if reference is None and not own_models:
        reference = models.reference  # the zoo's statistics belong to the zoo's model and data only
    specs = {d: defence_registry.spec(d) for d in names if d != "none"}
    if reference is None and any(spec.needs_reference for spec in specs.values()):
        if x_train is None:
            raise ValueError("reference: an SSNI defence needs reference statistics: pass reference= or x_train=.")
        pre = SSNIPreprocessor(diffusion, seed=protocol.seed, device_type=art_device_type(device))
        reference = pre.fit(x_train).reference
    own = {d: defence_settings(d, tuple(x.shape[1:]), int(models.t_star), t_star, defence_kwargs) for d in specs}
    # 3. run, one defence at a time (each with its own t*), every one facing the protocol's attack suite; a
    #    sharded run gives rank r the defences names[r::size] and gathers every rank's rows
    start = time.perf_counter()
    rank, size = (0, 1) if world is None else (int(world.rank), int(world.size))
    mine: dict[str, list[Any]] = {}
    for name in names[rank::size]:
        mine[name] = compare_defences(
            classifier,
            diffusion,
            x,
            y,
            defences=[name],
            protocol=protocol,
            reference=reference,
            nb_classes=int(nb_classes),
            clip_values=models.clip_values,
            defence_kwargs={"seed": protocol.seed, **own.get(name, {})},
            device_type=art_device_type(device),
            store=None if out is None else Path(out) / ADVERSARIAL_FOLDER,
            progress=progress,
        )
    done = mine if size == 1 else {k: v for part in world.all_gather(mine) for k, v in part.items()}
    rows = [row for name in names for row in done[name]]
    wall = time.perf_counter() - start
    shown = {**DEFENCE_DEFAULTS, **defence_kwargs}
    return {
        **run_record(device=device, wall_seconds=wall),
        "units": "accuracies are fractions in [0, 1]; ci95 = 95 % Wilson interval",
        "settings": {
            "zoo": getattr(models, "name", None),
            "own_models": own_models,
            "n_images": int(len(x)),
            "seed": int(protocol.seed),
            "base": base,
            "defences": names,
            "attacks": list(protocol.attacks),
            "protocol": protocol.to_dict(),
            "defence": {**shown, "t_star": {d: o["t_star"] for d, o in own.items()}},
            "t_star_given": t_star,
            "reference": reference.to_dict() if reference else None,
            "adversarial": None if out is None else ADVERSARIAL_FOLDER,
            "processes": size,
        },
        "fingerprints": {
            "data_sha256": array_fingerprint(x, y),
            "classifier_sha256": module_fingerprint(classifier),
            "diffusion_sha256": module_fingerprint(diffusion),
        },
        "defences": [row.__dict__ for row in rows],
    }
