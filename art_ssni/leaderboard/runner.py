"""The leaderboard runner: a fixed protocol over batches, sharded across ranks, resumable, merged by rank 0.

:func:`run_leaderboard` evaluates one classifier + one registered defence on ``N`` examples:

1. The examples are cut into batches of ``protocol.batch_size`` (the unit of work). Rank ``r`` of a world of
   ``W`` processes takes batches ``r, r + W, r + 2W, ...`` (``torchrun --nproc_per_node=W``; one process is a
   world of one).
2. Each batch is evaluated by :func:`art_ssni.evaluation.robust_accuracy` (clean prediction, every attack of the
   protocol, per-example worst case) with every random draw seeded by
   :func:`~art_ssni.leaderboard.protocol.batch_seed` of the run's seed and the *batch index*: the defence's
   generator, the attacks' seeds and torch's / numpy's global generators. Nothing depends on the rank, so a
   sharded run gives exactly the numbers of a single-process run (on CPU; on GPU as far as the kernels are
   deterministic).
3. A finished batch is written to ``out/batches/`` at once (atomically); a rerun with the same settings skips the
   batches that have a file (an interrupted run loses at most the batch it was running), and a rerun with other
   settings is refused.
4. The ranks exchange their batch records (``all_gather_object``), and rank 0 writes ``model_info.json`` (the
   RobustBench-style summary) and ``per_example.json``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from art_ssni import defences as defence_registry
from art_ssni._common import art_device_type, versions
from art_ssni.attacks.requirements import meets
from art_ssni.diffusion.model import DiffusionModel
from art_ssni.evaluation.compare import defended_classifier, levels_used
from art_ssni.evaluation.fixed_randomness import fixed_randomness_correct
from art_ssni.evaluation.records import array_fingerprint, module_fingerprint, run_record
from art_ssni.evaluation.robust import batch_seed, robust_accuracy
from art_ssni.evaluation.stored import save_adversarial
from art_ssni.leaderboard.definitions import DEFINITIONS
from art_ssni.leaderboard.distributed import World, world
from art_ssni.leaderboard.merge import merge_records
from art_ssni.leaderboard.protocol import AttackProtocol
from art_ssni.leaderboard.store import ResultStore
from art_ssni.preprocessor import SSNIPreprocessor
from art_ssni.ssni.reference import ReferenceStats

__all__ = ["DEFINITIONS", "batch_record", "merge_records", "run_leaderboard", "versions"]

_MANAGED = ("seed", "eot_samples", "clip_values", "device_type", "reference")


def _plain(value: Any) -> Any:
    if isinstance(value, ReferenceStats):
        return value.to_dict()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _purifier_settings(pre: SSNIPreprocessor | None) -> dict[str, Any] | None:
    if pre is None:
        return None
    return {p: _plain(v) for p, v in pre.to_config().items() if p != "seed"}


def _check_inputs(x: Any, y: Any, nb_classes: Any) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(x, np.ndarray) or x.ndim != 4 or x.shape[0] == 0 or not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"x must be a non-empty float (N, C, H, W) numpy array, got {getattr(x, 'shape', type(x))}.")
    if not np.isfinite(x).all() or x.min() < 0.0 or x.max() > 1.0:
        raise ValueError("x must hold finite pixels in [0, 1].")
    if isinstance(nb_classes, bool) or not isinstance(nb_classes, (int, np.integer)) or nb_classes < 2:
        raise ValueError(f"nb_classes must be an int >= 2, got {nb_classes!r}.")
    y = np.asarray(y)
    if y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= nb_classes:
        raise ValueError(f"y must be ({x.shape[0]},) integer labels in [0, {nb_classes - 1}], got shape {y.shape}.")
    return np.array(x, dtype=np.float32, copy=True), np.array(y, dtype=np.int64, copy=True)


def _setup(store: ResultStore, config: dict[str, Any], w: World) -> str:
    """Open the store on every rank; if any rank fails, every rank raises (no rank is left waiting)."""
    key, error = "", None
    try:
        key = store.open(config, create=True)  # identical atomic writes: safe from every rank
    except (OSError, ValueError) as err:
        error = f"{type(err).__name__}: {err}"
    errors = [e for e in w.all_gather(error) if e]
    if errors:
        raise ValueError(errors[0].split(": ", 1)[1])
    return key


def run_leaderboard(
    classifier: torch.nn.Module,
    diffusion: DiffusionModel | None,
    x: np.ndarray,
    y: np.ndarray,
    *,
    protocol: AttackProtocol,
    out: str | os.PathLike[str],
    nb_classes: int,
    defence: str = "ssni-n",
    reference: ReferenceStats | None = None,
    defence_kwargs: Mapping[str, Any] | None = None,
    info: Mapping[str, Any] | None = None,
    device: str = "cpu",
    progress: bool = True,
    record_levels: bool = False,
    fixed_randomness: bool = False,
) -> dict[str, Any]:
    """Evaluate ``classifier`` behind the registered ``defence`` under ``protocol``; sharded, resumable.

    Run it as one process, or as ``N`` under ``torchrun --nproc_per_node=N`` (every rank calls it with the same
    arguments). Returns the merged ``model_info`` on every rank; rank 0 writes it to ``out/model_info.json``.

    :param classifier: ``(B, C, H, W)`` pixels in ``[0, 1]`` → ``(B, nb_classes)`` logits (e.g. a RobustBench
        model, which normalises its inputs itself).
    :param diffusion: the diffusion model of the purifier (``None`` only with ``defence="none"``).
    :param x: ``(N, C, H, W)`` float clean images in ``[0, 1]`` (never modified).
    :param y: ``(N,)`` integer labels.
    :param protocol: the attack protocol (:class:`~art_ssni.leaderboard.AttackProtocol`).
    :param out: output folder (created; see :class:`~art_ssni.leaderboard.store.ResultStore` for its layout).
    :param nb_classes: number of classes of ``classifier``.
    :param defence: ``"none"`` or a name of :func:`art_ssni.defences.available` (e.g. ``"diffpure"``,
        ``"ssni-n"``, ``"ssni-l"``).
    :param reference: SSNI's reference statistics (needed by SSNI defences).
    :param defence_kwargs: settings passed to the defence factory (``t_star``, ``sampler``, ``steps``, ``gradient``,
        ``checkpoint``, ``batch_size`` ...). ``seed`` and ``eot_samples`` are set by the protocol.
    :param info: JSON-ready description stored in the results (``name``, ``model``, ``dataset``, ``diffusion``...).
    :param device: ``"cpu"`` or ``"cuda"`` (under torchrun each rank uses ``cuda:LOCAL_RANK``).
    :param progress: show one progress bar per rank.
    :param record_levels: also record, per batch, the noise levels the defence picks for the clean and the
        worst-case inputs (``t_clean``, ``t_adversarial``; two more scorings per example, for the frontier).
    :param fixed_randomness: also run the fixed-randomness diagnostic per batch
        (:func:`~art_ssni.evaluation.fixed_randomness.fixed_randomness_correct`: PGD with the purification noise
        fixed and known, judged with that noise), reported as ``fixed_randomness``, never as a protocol.
    :return: the ``model_info`` dict (accuracies in percent).
    """
    if not isinstance(protocol, AttackProtocol):
        raise TypeError(f"protocol must be an art_ssni.leaderboard.AttackProtocol, got {type(protocol).__name__}.")
    x, y = _check_inputs(x, y, nb_classes)
    known = defence_registry.available()
    if defence != "none" and defence not in known:
        raise ValueError(f"defence must be one of {['none', *known]}, got {defence!r}.")
    if defence != "none" and not isinstance(diffusion, DiffusionModel):
        raise TypeError(
            f"diffusion must be an art_ssni.DiffusionModel for defence {defence!r}, got {type(diffusion).__name__}."
        )
    defence_kwargs = dict(defence_kwargs or {})
    managed = sorted(set(defence_kwargs) & set(_MANAGED))
    if managed:
        raise ValueError(f"defence_kwargs must not set {managed}: the protocol and run_leaderboard set them.")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}.")
    info = dict(info or {})
    started = time.perf_counter()
    with world(device) as w:
        device_type = art_device_type(device)
        pre = None
        if defence != "none":
            assert diffusion is not None
            pre = defence_registry.make(
                defence,
                diffusion,
                reference=reference,
                device_type=device_type,
                seed=protocol.seed,
                eot_samples=protocol.eot,
                **{
                    **defence_registry.sized_for(defence, tuple(x.shape[1:])),
                    **defence_kwargs,
                },  # GDMP's scale for this size
            )
        clf = defended_classifier(
            classifier,
            pre,
            input_shape=tuple(x.shape[1:]),
            nb_classes=int(nb_classes),
            clip_values=(0.0, 1.0),
            device_type=device_type,
        )
        config: dict[str, Any] = {
            # identity only: paths may move between runs, the fingerprints below pin the data and the weights
            "info": {k: info[k] for k in ("name", "model", "dataset") if k in info},
            "defence": defence,
            "purifier": _purifier_settings(pre),
            "protocol": protocol.describe(meets(clf)),
            "n_ex": int(x.shape[0]),
            "nb_classes": int(nb_classes),
            "data_sha256": array_fingerprint(x, y),
            "classifier_sha256": module_fingerprint(classifier),
            "diffusion_sha256": module_fingerprint(diffusion) if diffusion is not None and pre is not None else None,
        }
        if fixed_randomness and pre is not None:  # only then: the keys of runs without it stay as they were
            config["diagnostics"] = ["fixed-randomness"]
        store = ResultStore(out)
        key = _setup(store, config, w)
        bs = protocol.batch_size
        n_batches = math.ceil(x.shape[0] / bs)
        mine = list(range(w.rank, n_batches, w.size))
        records, computed = [], 0
        bar = tqdm(
            mine, desc=f"leaderboard rank {w.rank}/{w.size}", position=w.rank, disable=None if progress else True
        )
        for b in bar:
            record = store.load_batch(b, key)
            if record is None:
                record, adversarial = _run_batch(
                    clf, pre, protocol, x, y, b, key, record_levels, fixed_randomness and pre is not None
                )
                lo, hi = record["start"], record["stop"]
                meta = {"key": key, "batch": int(b), "seed": record["seed"]}
                save_adversarial(store.adversarial_path(b), x[lo:hi], y[lo:hi], adversarial, metadata=meta)
                store.save_batch(record)  # after its adversarial examples: a batch with a record has both
                computed += 1
            records.append(record)
            bar.set_postfix(clean=sum(sum(r["clean_correct"]) for r in records))
        bar.close()
        gathered = [r for part in w.all_gather(records) for r in part]
        computed_total = sum(w.all_gather(computed))
        summary, per_example = merge_records(gathered, x.shape[0], bs)
        record = run_record(device=device)
        model_info: dict[str, Any] = {
            "name": info.get("name", defence),
            **{k: info[k] for k in ("model", "dataset") if k in info},
            "threat_model": protocol.threat_model,
            "eps": float(protocol.eps),
            "defence": defence,
            **summary,
            "definitions": DEFINITIONS,
            "protocol": config["protocol"],
            "purifier": config["purifier"],
            "info": info,
            "fingerprints": {k: config[k] for k in ("data_sha256", "classifier_sha256", "diffusion_sha256")},
            "schema_version": record.pop("schema_version"),
            "versions": record.pop("versions"),
            "runtime": {
                **record,  # timestamp, git commit, machine: run-time facts, not numbers
                "world_size": w.size,
                "batches": n_batches,
                "batches_computed_this_run": computed_total,
                "batch_seconds_total": round(sum(float(r["seconds"]) for r in gathered), 3),
                "wall_seconds": round(time.perf_counter() - started, 3),
                "device": device,
            },
        }
        if w.rank == 0:
            store.save_results(model_info, per_example)
        w.barrier()
    return model_info


def _run_batch(
    clf: Any,
    pre: SSNIPreprocessor | None,
    protocol: AttackProtocol,
    x: np.ndarray,
    y: np.ndarray,
    batch: int,
    key: str,
    record_levels: bool = False,
    fixed_randomness: bool = False,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Evaluate batch ``batch`` with every random draw keyed by ``batch_seed(protocol.seed, batch)``; returns its
    record and every attack's outputs."""
    start_t = time.perf_counter()
    seed = batch_seed(protocol.seed, batch)
    lo, hi = batch * protocol.batch_size, min((batch + 1) * protocol.batch_size, x.shape[0])
    attacks = protocol.build(clf, seed=seed)
    if pre is not None:  # after building: ART's APGD runs a probe prediction when it is constructed
        pre.set_params(seed=seed)
        pre.reset_generator()
    judging = {**protocol.judging(), "seed": seed, "batch_size": protocol.batch_size}
    result = robust_accuracy(clf, x[lo:hi], y[lo:hi], attacks, **judging)
    extra: dict[str, Any] = {}  # the levels and the diagnostic, when asked for
    if pre is not None and record_levels:  # the levels picked for the clean and the worst-case inputs, after the run
        extra = {
            "t_clean": levels_used(clf, x[lo:hi]).tolist(),
            "t_adversarial": levels_used(clf, result.worst_case_inputs).tolist(),
        }
    if fixed_randomness and pre is not None:
        extra["fixed_randomness_correct"] = fixed_randomness_correct(clf, x[lo:hi], y[lo:hi], protocol, seed=seed)
    seconds = time.perf_counter() - start_t
    record = batch_record(result, key=key, batch=batch, lo=lo, hi=hi, seed=seed, extra=extra, seconds=seconds)
    return record, result.adversarial


def batch_record(
    result: Any, *, key: str, batch: int, lo: int, hi: int, seed: int, extra: dict[str, Any], seconds: float = 0.0
) -> dict[str, Any]:
    """The JSON record of one batch's :class:`~art_ssni.evaluation.RobustAccuracyResult` (what ``batches/`` holds)."""
    return {
        **extra,
        "key": key,
        "batch": int(batch),
        "start": int(lo),
        "stop": int(hi),
        "seed": int(seed),
        "clean_correct": result.clean_correct,
        "attack_correct": result.attack_correct,
        "worst_case_correct": result.worst_case_correct,
        "single_counts": {c: [round(a * (hi - lo)) for a in v] for c, v in result.single_redraws.items()},
        "resubmit_correct": result.resubmit_correct,
        "vote_correct": result.vote_correct,
        "worst_case_source": result.worst_case_source,
        "worst_case_sources": result.worst_case_sources,
        "every_candidate_correct": result.every_candidate_correct,
        "seconds": round(seconds, 3),
    }
