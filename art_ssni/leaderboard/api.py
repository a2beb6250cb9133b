"""``art-ssni leaderboard`` as one Python call: resolve models, data and reference by name, then run.

:func:`leaderboard` is what the command line calls. It resolves

* the classifier: ``dataset="digits"`` -- the shipped zoo CNN (``model="zoo"``); ``dataset="cifar10"`` -- a
  RobustBench model by name, loaded offline from ``model_dir`` (:func:`art_ssni.robustbench.load_classifier`,
  needs ``pip install 'art-ssni[robustbench]'``);
* the diffusion model: ``diffusion`` (a local diffusers folder), or the zoo's for digits;
* the data: the first ``n_ex`` test images (digits: the zoo split; CIFAR-10: ``data_dir``);
* SSNI's reference statistics: a JSON file, the zoo's (digits with the zoo's diffusion model), or fitted once by
  rank 0 on ``n_ref`` clean training images and kept in ``out/reference.json`` (reused when the run resumes);

and calls :func:`~art_ssni.leaderboard.run_leaderboard` with the :class:`~art_ssni.leaderboard.AttackProtocol`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from art_ssni._common import art_device_type, is_int
from art_ssni.diffusion.model import DiffusionModel
from art_ssni.evaluation.run import DEFENCE_DEFAULTS
from art_ssni.leaderboard.data import DATASETS, load_cifar10, load_cifar10_train
from art_ssni.leaderboard.distributed import world
from art_ssni.leaderboard.protocol import AttackProtocol
from art_ssni.leaderboard.runner import run_leaderboard
from art_ssni.leaderboard.store import write_json_atomic
from art_ssni.ssni.reference import ReferenceStats

__all__ = ["DEFAULT_EPS", "default_eps", "leaderboard", "parse_eps"]

#: default radius per (dataset, threat model); digits ℓ∞ comes from the zoo
DEFAULT_EPS = {("cifar10", "Linf"): 8 / 255, ("cifar10", "L2"): 0.5}

_REFERENCE_FILE = "reference.json"


def parse_eps(text: str) -> float:
    """``"8/255"`` or ``"0.031"`` → a float > 0 (raises ``ValueError`` otherwise)."""
    num, sep, den = str(text).partition("/")
    try:
        value = float(num) / float(den) if sep else float(num)
    except (ValueError, ZeroDivisionError) as err:
        raise ValueError(f"eps must be a number or a fraction such as 8/255, got {text!r}.") from err
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"eps must be a finite number > 0, got {text!r}.")
    return value


def default_eps(dataset: str, threat_model: str = "Linf") -> float:
    """The default radius: 8/255 (CIFAR-10 ℓ∞), 0.5 (CIFAR-10 ℓ2), the zoo's (digits ℓ∞)."""
    from art_ssni.attacks.protocol import threat_model_name

    name = threat_model_name(threat_model)
    if dataset == "digits" and name == "Linf":
        import json

        from art_ssni import zoo

        return float(json.loads((zoo.weights_dir("digits") / "zoo.json").read_text())["eps"])
    eps = DEFAULT_EPS.get((dataset, str(name)))
    if eps is None:
        raise ValueError(f"eps: no default for {dataset} {threat_model}; give the protocol's eps.")
    return eps


def leaderboard(
    model: str = "zoo",
    *,
    dataset: str = "digits",
    protocol: AttackProtocol | None = None,
    n_ex: int = 512,
    defence: str = "ssni-n",
    diffusion: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    model_dir: str | os.PathLike[str] = "./models",
    reference: str | os.PathLike[str] | ReferenceStats | None = None,
    n_ref: int = 5000,
    out: str | os.PathLike[str] = "results/leaderboard",
    device: str = "cpu",
    progress: bool = True,
    **defence_kwargs: Any,
) -> dict[str, Any]:
    """Evaluate ``model`` behind ``defence`` on ``dataset`` under the leaderboard protocol; returns ``model_info``.

    Run as one process or under ``torchrun --nproc_per_node=N`` (sharded; identical numbers). Resumes from
    ``out`` when it holds an unfinished run with the same settings.

    :param model: ``"zoo"`` for ``dataset="digits"``; a RobustBench model name (e.g. ``"Standard"``) for CIFAR-10.
    :param dataset: ``"digits"`` or ``"cifar10"``.
    :param protocol: threat model, attacks, budget, selection and judging (:class:`AttackProtocol`); ``None``: the
        standard protocol (APGD rand + PGD-EOT, 100 / 200 iterations, EOT 20) at :func:`default_eps`.
    :param n_ex: number of test examples (the first ``n_ex``; fewer if the test set is smaller).
    :param defence: ``"none"`` or a registered defence name (:func:`art_ssni.defences.available`).
    :param diffusion: local diffusers folder of the purifier's diffusion model (required for CIFAR-10).
    :param data_dir: CIFAR-10 folder or ``.npz`` (:func:`~art_ssni.leaderboard.data.load_cifar10`).
    :param model_dir: RobustBench's model folder (``{model_dir}/{dataset}/{threat_model}/{model}.pt``).
    :param reference: SSNI reference statistics (a JSON file of :meth:`ReferenceStats.to_json` or the object).
    :param n_ref: clean training images to fit the reference on when none is given (paper: 5,000).
    :param out: output folder.
    :param device: ``"cpu"`` or ``"cuda"``.
    :param progress: progress bars (one per rank).
    :param defence_kwargs: settings of the defence (``t_star``, ``sampler`` (default ``"ddim"`` with ``steps=10``, as
        ``art-ssni evaluate``; ``"ddpm"`` is the paper's), ``steps``, ``eta``, ``gradient``,
        ``surrogate_steps``, ``checkpoint``, ``tau``, ``bias``, ``score_steps``, ``batch_size`` is
        ``purifier_batch_size`` here).
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {sorted(DATASETS)}, got {dataset!r}.")
    if protocol is None:
        protocol = AttackProtocol(eps=default_eps(dataset))
    if not isinstance(protocol, AttackProtocol):
        raise TypeError(f"protocol must be an art_ssni AttackProtocol or None, got {type(protocol).__name__}.")
    if not is_int(n_ex) or n_ex < 1:
        raise ValueError(f"n_ex must be an int >= 1, got {n_ex!r}.")
    if not is_int(n_ref) or n_ref < 2:
        raise ValueError(f"n_ref must be an int >= 2, got {n_ref!r}.")
    if "purifier_batch_size" in defence_kwargs:
        defence_kwargs["batch_size"] = defence_kwargs.pop("purifier_batch_size")
    defence_kwargs.setdefault("checkpoint", True)
    # one default sampler with art-ssni evaluate (DEFENCE_DEFAULTS): DDIM-10; sampler="ddpm" for the paper's
    if defence_kwargs.setdefault("sampler", DEFENCE_DEFAULTS["sampler"]) == "ddim":
        defence_kwargs.setdefault("steps", DEFENCE_DEFAULTS["steps"])
    nb_classes = DATASETS[dataset][0]
    stats: ReferenceStats | None = None
    if isinstance(reference, ReferenceStats):
        stats = reference
    elif reference is not None:
        stats = ReferenceStats.from_json(reference)
    info: dict[str, Any] = {"model": model, "dataset": dataset}
    if dataset == "digits":
        from art_ssni import zoo

        if model != "zoo":
            raise ValueError(f"model must be 'zoo' for dataset 'digits' (the shipped CNN), got {model!r}.")
        models = zoo.load("digits", device=device)
        classifier = models.classifier
        x, y = models.x_test[:n_ex], models.y_test[:n_ex]
        x_train = models.x_train
        if diffusion is None:
            diff_model = models.diffusion
            stats = stats if stats is not None else models.reference
            defence_kwargs.setdefault("score_steps", models.score_steps)
        else:
            diff_model = DiffusionModel.from_pretrained(diffusion).to(device)
        defence_kwargs.setdefault("t_star", models.t_star)
        info.update(name=f"zoo-digits-cnn + {defence}", diffusion=str(diffusion) if diffusion else "zoo:digits")
    else:
        from art_ssni.robustbench import load_classifier

        if diffusion is None:
            raise ValueError(
                "diffusion: a local diffusers folder or a Hub repo id is required for CIFAR-10 "
                "(e.g. google/ddpm-cifar10-32)."
            )
        if data_dir is None:
            raise ValueError("data_dir: a local CIFAR-10 folder or .npz is required (no download).")
        threat = protocol.threat_model
        classifier = load_classifier(model, dataset=dataset, threat_model=threat, model_dir=model_dir).to(device)
        diff_model = DiffusionModel.from_pretrained(diffusion).to(device)
        x, y = load_cifar10(data_dir, n_ex)
        x_train = None
        info.update(name=f"{model} + {defence}", diffusion=str(diffusion), model_dir=str(model_dir))
    needs_reference = False
    if defence != "none" and stats is None:
        from art_ssni import defences as defence_registry

        needs_reference = defence_registry.spec(defence).needs_reference  # e.g. SSNI-N / SSNI-L; DiffPure needs none
    with world(device) as w:
        if needs_reference:
            path = Path(out) / _REFERENCE_FILE
            if w.rank == 0 and not path.is_file():
                images = x_train[:n_ref] if x_train is not None else load_cifar10_train(data_dir, n_ref)  # type: ignore[arg-type]
                stats = _fit_reference(
                    diff_model, images, seed=protocol.seed, device=device, defence_kwargs=defence_kwargs
                )
                write_json_atomic(path, stats.to_dict())
            w.barrier()
            stats = ReferenceStats.from_json(path)
            info["reference"] = f"fitted on the first {n_ref} training images (out/{_REFERENCE_FILE})"
        return run_leaderboard(
            classifier,
            diff_model if defence != "none" else None,
            x,
            y,
            protocol=protocol,
            out=out,
            nb_classes=nb_classes,
            defence=defence,
            reference=stats,
            defence_kwargs=defence_kwargs,
            info=info,
            device=device,
            progress=progress,
        )


def _fit_reference(
    diffusion: DiffusionModel, images: np.ndarray, *, seed: int, device: str, defence_kwargs: dict[str, Any]
) -> ReferenceStats:
    from art_ssni.preprocessor import SSNIPreprocessor

    settings = {k: defence_kwargs[k] for k in ("score_steps", "batch_size") if k in defence_kwargs}
    pre = SSNIPreprocessor(diffusion, seed=seed, device_type=art_device_type(device), **settings)
    fitted = pre.fit(np.asarray(images, dtype=np.float32)).reference
    assert fitted is not None
    return fitted
