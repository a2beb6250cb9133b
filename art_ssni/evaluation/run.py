"""What ``art-ssni evaluate`` does, as a function: :func:`evaluate` compares named defences and returns the results.

The command line only parses its options, calls :func:`evaluate`, prints the table and draws the plots (as
``art-ssni leaderboard`` does with :func:`art_ssni.leaderboard.leaderboard`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from art_ssni import defences as defence_registry
from art_ssni._common import art_device_type, is_int, torch_device
from art_ssni.attacks import registry as attack_registry
from art_ssni.attacks.registry import AttackSettings
from art_ssni.diffusion.model import DiffusionModel
from art_ssni.evaluation.compare import compare_defences
from art_ssni.evaluation.records import array_fingerprint, module_fingerprint, run_record
from art_ssni.preprocessor import SSNIPreprocessor
from art_ssni.ssni.reference import ReferenceStats

__all__ = ["DEFAULTS", "evaluate", "with_base"]

#: the defaults of :func:`evaluate` and ``art-ssni evaluate`` (sized to finish in < 10 min on 2 CPU cores)
DEFAULTS: dict[str, Any] = {
    "defences": ("none", "diffpure", "ssni-n", "ssni-l"),
    "attacks": ("pgd-eot", "score-aware"),
    "n_images": 32,
    "iterations": 10,
    "eot": 4,
    "select_draws": 8,
    "select_every": 5,
    "votes": 9,
    "redraws": 5,
    "resubmit": 10,
    "sampler": "ddim",
    "steps": 10,
}


def with_base(name: str, base: str) -> str:
    """``diffpure`` / ``ssni-n`` / ``ssni-l`` on another base: its registered name (``gns``, ``gns+ssni-n`` ...)."""
    if base == "diffpure" or name not in ("diffpure", "ssni-n", "ssni-l"):
        return name
    return base if name == "diffpure" else f"{base}+{name}"


def _defence_settings(name: str, x_shape: tuple[int, ...], zoo_t_star: int, t_star: int | None) -> dict[str, Any]:
    """``t_star`` (and GDMP's image-size-adjusted guidance scale) of the registered defence ``name``.

    The preset's own ``t*`` (:func:`art_ssni.defences.spec`; GDMP: 36) wins over the zoo's unless ``t_star`` is
    given; GDMP's guidance scale keeps CIFAR-10's per-pixel strength on this image size (``gdmp_scale_for``).
    """
    spec = defence_registry.spec(name)
    out: dict[str, Any] = {"t_star": int(t_star) if t_star is not None else (spec.t_star or zoo_t_star)}
    return {**out, **defence_registry.sized_for(name, x_shape)}


def evaluate(
    models: Any,
    *,
    diffusion: DiffusionModel | None = None,
    classifier: torch.nn.Module | None = None,
    nb_classes: int | None = None,
    x: np.ndarray | None = None,
    y: np.ndarray | None = None,
    x_train: np.ndarray | None = None,
    reference: ReferenceStats | None = None,
    defences: Sequence[str] = DEFAULTS["defences"],
    base: str = "diffpure",
    attacks: Sequence[str] = DEFAULTS["attacks"],
    n_images: int = DEFAULTS["n_images"],
    eps: float | None = None,
    norm: str | int = "inf",
    eps_step: float | None = None,
    iterations: int = DEFAULTS["iterations"],
    eot: int = DEFAULTS["eot"],
    select_draws: int = DEFAULTS["select_draws"],
    select_every: int | None = DEFAULTS["select_every"],
    votes: int = DEFAULTS["votes"],
    redraws: int = DEFAULTS["redraws"],
    resubmit: int = DEFAULTS["resubmit"],
    lam: float = 1.0,
    stealth_quantile: float = 0.25,
    temperature: float = 0.25,
    t_star: int | None = None,
    tau: float | None = None,
    bias: float = 5.0,
    sampler: str = DEFAULTS["sampler"],
    steps: int | None = DEFAULTS["steps"],
    eta: float = 1.0,
    gradient: str = "exact",
    checkpoint: bool = False,
    seed: int = 0,
    device: str = "cpu",
    verbose: bool = False,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Compare ``defences`` on the first ``n_images`` test images under ``attacks``; the work of ``art-ssni evaluate``.

    Models and data default to those of ``models``, a zoo entry (``art_ssni.zoo.load("digits")``; anything with
    its fields ``name``, ``diffusion``, ``classifier``, ``nb_classes``, ``clip_values``, ``x_test``, ``y_test``,
    ``reference``, ``t_star``, ``eps``); pass ``diffusion``, ``classifier`` (with ``nb_classes``), ``x`` / ``y``
    and ``reference`` to use your own. Defences that need reference statistics get ``reference``,
    the zoo's (with the zoo's model and data), or statistics fitted on ``x_train``. Each defence keeps its own
    preset ``t*`` (e.g. GDMP's 36) unless ``t_star`` is given; the others get the zoo's ``t*``.

    :return: the JSON-ready results: ``settings``, the run record (:func:`~art_ssni.evaluation.records.run_record`:
        ``schema_version``, ``timestamp``, ``git_commit``, ``machine``, ``versions``, ``wall_seconds``),
        ``fingerprints`` and ``defences`` (one :class:`~art_ssni.evaluation.compare.DefenceEvaluation` dict each).
    :raises ValueError: on a bad setting, before any model is loaded.
    """
    # 1. check every setting before anything is loaded or run
    unknown = [a for a in attacks if a not in attack_registry.ATTACKS]
    if unknown:
        raise ValueError(f"attacks must be among {list(attack_registry.ATTACKS)}, got {unknown}.")
    if not attacks:
        raise ValueError("attacks must name at least one attack.")
    names = [with_base(d, base) for d in defences]
    known = defence_registry.available()
    bad = [d for d in names if d != "none" and d not in known]
    if bad:
        raise ValueError(f"defences must be among {['none', *known]}, got {bad}.")
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
    if reference is None and not own_models:
        reference = models.reference  # the zoo's statistics belong to the zoo's model and data only
    specs = {d: defence_registry.spec(d) for d in names if d != "none"}
    if reference is None and any(spec.needs_reference for spec in specs.values()):
        if x_train is None:
            raise ValueError("reference: an SSNI defence needs reference statistics: pass reference= or x_train=.")
        reference = SSNIPreprocessor(diffusion, seed=seed, device_type=art_device_type(device)).fit(x_train).reference
    own = {d: _defence_settings(d, tuple(x.shape[1:]), int(models.t_star), t_star) for d in specs}
    eps = float(eps) if eps is not None else float(models.eps)
    settings = AttackSettings(
        eps=eps,
        norm=norm,
        eps_step=eps_step,
        max_iter=int(iterations),
        eot=int(eot),
        select_draws=int(select_draws),
        select_every=select_every,
        lam=float(lam),
        stealth_quantile=float(stealth_quantile),
        temperature=float(temperature),
        votes=int(votes),
        seed=int(seed),
        verbose=bool(verbose),
    )
    defence_kwargs: dict[str, Any] = dict(
        bias=bias,
        tau=tau,
        sampler=sampler,
        eta=eta,
        seed=seed,
        gradient=gradient,
        checkpoint=checkpoint,
        steps=steps if sampler == "ddim" else None,
    )
    # 3. run, one defence at a time (each with its own t*)
    start = time.perf_counter()
    rows = []
    for name in names:
        kwargs = {**defence_kwargs, **own.get(name, {})}
        rows += compare_defences(
            classifier,
            diffusion,
            x,
            y,
            defences=[name],
            attacks=list(attacks),
            reference=reference,
            nb_classes=int(nb_classes),
            clip_values=models.clip_values,
            defence_kwargs=kwargs,
            attack_settings=settings,
            votes=votes,
            redraws=redraws,
            resubmit=resubmit,
            seed=seed,
            device_type=art_device_type(device),
            progress=progress,
        )
    wall = time.perf_counter() - start
    attack_record = {k: (str(v) if k == "norm" else v) for k, v in settings.__dict__.items()}
    return {
        **run_record(device=device, wall_seconds=wall),
        "units": "accuracies are fractions in [0, 1]; ci95 = 95 % Wilson interval",
        "settings": {
            "zoo": getattr(models, "name", None),
            "own_models": own_models,
            "n_images": int(len(x)),
            "seed": int(seed),
            "base": base,
            "defences": names,
            "attacks": list(attacks),
            "attack": attack_record,
            "defence": {**defence_kwargs, "t_star": {d: o["t_star"] for d, o in own.items()}},
            "protocols": {"redraws": int(redraws), "resubmit": int(resubmit), "votes": int(votes)},
            "reference": reference.to_dict() if reference else None,
        },
        "fingerprints": {
            "data_sha256": array_fingerprint(x, y),
            "classifier_sha256": module_fingerprint(classifier),
            "diffusion_sha256": module_fingerprint(diffusion),
        },
        "defences": [row.__dict__ for row in rows],
    }
