"""The accuracy-robustness frontier of a constant noise level (DiffPure) against SSNI, swept over ``t*`` and ``τ``.

SSNI's claim is a better trade-off than one noise level for every input: clean inputs get less noise (clean accuracy
kept), adversarial ones more (robustness kept or raised). :func:`frontier` measures it. A *point* is one registered
defence at one ``t*`` (and, for SSNI-N, one temperature ``τ`` as a multiple of the reference std); for each point
it runs the leaderboard protocol (:func:`art_ssni.leaderboard.run_leaderboard`: every applicable attack of the one
registry, per-example worst case, protocols single / resubmit-N / vote-K, Wilson intervals) and adds

Every point faces the same attack suite (an attack that needs what a defence lacks is replaced by a PGD-EOT
restart) and its worst case is the attacker's one submission per sample, judged per protocol. Each point also gets

* an exact McNemar p-value of every SSNI point against the constant-noise point of the same base at the same ``t*``
  (clean and worst case, per protocol; paired on the same examples);
* the attack that decided the point (the lowest accuracy of the protocol);
* the noise levels the defence chose on the clean inputs and on the per-example worst-case inputs.

Each point is a leaderboard run in ``out/points/<point id>/`` (atomic per-batch files: a rerun resumes; sharded
with ``torchrun --nproc_per_node=N``); rank 0 merges them into ``out/results.json``, which holds every per-example
verdict. :data:`BUDGETS` are the attack presets (:mod:`art_ssni.attacks.protocol`: ``quick`` for smoke runs,
``strong`` the convergence study's plateau, ``paper`` the SSNI paper's PGD-EOT budget).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from art_ssni import defences as defence_registry
from art_ssni._common import is_finite_real, is_int, versions, write_json_atomic
from art_ssni.attacks.protocol import BUDGETS, AttackProtocol
from art_ssni.diffusion.model import DiffusionModel
from art_ssni.evaluation.result import PROTOCOLS
from art_ssni.evaluation.stats import mcnemar_p
from art_ssni.leaderboard.distributed import world
from art_ssni.leaderboard.merge import deciding_attack
from art_ssni.leaderboard.runner import run_leaderboard
from art_ssni.leaderboard.store import ResultStore
from art_ssni.ssni.reference import ReferenceStats

__all__ = [
    "BUDGETS",
    "DEFAULT_ATTACKS",
    "DEFAULT_TAU_SCALES",
    "DEFAULT_T_STARS",
    "FrontierPoint",
    "frontier",
    "frontier_points",
]

#: ``t*`` values swept by default (the zoo's DiffPure loses clean accuracy above 100)
DEFAULT_T_STARS = (50, 100, 150, 200)

#: SSNI-N temperatures swept by default, as multiples of the reference std (the paper's accuracy-vs-τ figure)
DEFAULT_TAU_SCALES = (0.5, 1.0, 2.0)

#: attacks of every point (the registry skips those that do not apply, e.g. the selector attack on DiffPure)
DEFAULT_ATTACKS = ("pgd-eot", "selective-eot", "low-frequency", "score-aware-stealth")

_RESULTS = "results.json"
_POINTS = "points"


@dataclass(frozen=True)
class FrontierPoint:
    """One point of the frontier: the registered defence ``defence`` at noise level ``t_star``.

    :param defence: a name of :func:`art_ssni.defences.available` (``"diffpure"``, ``"ssni-n"``, ``"gns+ssni-l"``...).
    :param t_star: the base noise level ``t*`` (>= 1).
    :param tau_scale: SSNI-N only (sigmoid reweighting): ``τ`` as a multiple of the reference std; ``None`` for the
        other reweightings.
    """

    defence: str
    t_star: int
    tau_scale: float | None = None

    @property
    def id(self) -> str:
        """Folder-safe identity, e.g. ``"ssni-n_t150_tau1"``."""
        tau = "" if self.tau_scale is None else f"_tau{self.tau_scale:g}"
        return f"{self.defence.replace('+', '-')}_t{self.t_star}{tau}"


def _is_sigmoid(defence: str) -> bool:
    return defence_registry.spec(defence).reweight == "sigmoid"


def frontier_points(
    defences: Sequence[str] = ("diffpure", "ssni-n", "ssni-l"),
    t_stars: Sequence[int] = DEFAULT_T_STARS,
    *,
    tau_scales: Sequence[float] = DEFAULT_TAU_SCALES,
    tau_t_star: int | None = None,
    extra_defences: Sequence[str] = (),
) -> list[FrontierPoint]:
    """The points of a sweep: every defence at every ``t*``; SSNI-N's ``τ`` sweep and ``extra_defences`` at one ``t*``.

    :param defences: registered defence names swept over ``t_stars`` (SSNI-N with ``τ`` = 1 x the reference std).
    :param t_stars: base noise levels, ints >= 1.
    :param tau_scales: ``τ`` multiples of the reference std for every sigmoid-reweighting defence of ``defences`` at
        ``tau_t_star`` (empty: no ``τ`` sweep).
    :param tau_t_star: ``t*`` of the ``τ`` sweep and of ``extra_defences``; ``None``: the middle of ``t_stars``.
    :param extra_defences: more registered names (e.g. ``"gns"``, ``"gns+ssni-n"``, ``"gdmp"``) run at ``tau_t_star``
        only; include the constant-noise base of each so that its SSNI points get a McNemar test.
    :return: the points, without duplicates, in run order (``t*`` as given, then ``tau_t_star``; defences as given).
    """
    t_stars = list(t_stars)
    if not t_stars or any(not is_int(t) or t < 1 for t in t_stars) or len(set(t_stars)) != len(t_stars):
        raise ValueError(f"t_stars must be distinct ints >= 1, got {t_stars!r}.")
    if any(not is_finite_real(s) or s <= 0 for s in tau_scales):
        raise ValueError(f"tau_scales must be finite numbers > 0, got {list(tau_scales)!r}.")
    known = defence_registry.available()
    bad = [d for d in [*defences, *extra_defences] if d not in known]
    if bad or not defences:
        raise ValueError(f"defences must be non-empty names among {known}, got {[*defences, *extra_defences]!r}.")
    if tau_t_star is None:
        tau_t_star = sorted(t_stars)[len(t_stars) // 2]
    if not is_int(tau_t_star) or tau_t_star < 1:
        raise ValueError(f"tau_t_star must be an int >= 1 or None, got {tau_t_star!r}.")
    points: list[FrontierPoint] = []

    def add(defence: str, t_star: int, scale: float | None) -> None:
        point = FrontierPoint(defence, int(t_star), None if not _is_sigmoid(defence) else float(scale or 1.0))
        if point not in points:
            points.append(point)

    for t_star in [*t_stars, *([] if tau_t_star in t_stars else [tau_t_star])]:
        if t_star in t_stars:
            for d in defences:
                add(d, t_star, 1.0)
        if t_star == tau_t_star and (tau_scales or extra_defences):
            for d in [*defences, *extra_defences]:
                if _is_sigmoid(d):  # the τ sweep belongs to ``defences``; extra defences run at τ = 1 x std
                    for scale in (tau_scales or [1.0]) if d in defences else [1.0]:
                        add(d, t_star, scale)
                elif d in extra_defences or defence_registry.spec(d).reweight == "constant":
                    add(d, t_star, None)  # a constant base is the baseline of the McNemar tests
    return points


def _baseline(point: FrontierPoint, points: Sequence[FrontierPoint]) -> FrontierPoint | None:
    """The constant-noise point of the same base at the same ``t*`` (``None`` if there is none, or it is itself)."""
    spec = defence_registry.spec(point.defence)
    if spec.reweight == "constant":
        return None
    for other in points:
        o = defence_registry.spec(other.defence)
        if other.t_star == point.t_star and o.reweight == "constant" and type(o.base) is type(spec.base):
            return other
    return None


def _levels(store: ResultStore) -> tuple[list[int], list[int]]:
    """The recorded noise levels of a finished run, in example order (clean, worst-case inputs)."""
    manifest = json.loads((store.root / store.MANIFEST).read_text())
    t_clean: list[int] = []
    t_adv: list[int] = []
    b = 0
    while (record := store.load_batch(b, manifest["key"])) is not None:
        t_clean += [int(t) for t in record.get("t_clean", [])]
        t_adv += [int(t) for t in record.get("t_adversarial", [])]
        b += 1
    return t_clean, t_adv


def _mean(values: Sequence[int]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def frontier(
    classifier: torch.nn.Module,
    diffusion: DiffusionModel,
    x: np.ndarray,
    y: np.ndarray,
    *,
    reference: ReferenceStats,
    nb_classes: int,
    protocol: AttackProtocol,
    out: str | os.PathLike[str],
    points: Sequence[FrontierPoint] | None = None,
    defence_kwargs: Mapping[str, Any] | None = None,
    info: Mapping[str, Any] | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """Run every point of the frontier and merge them into ``out/results.json`` (rank 0); returns the results.

    Every point faces the same attack suite at the same budget: ``protocol.attacks``, an inapplicable one replaced
    by a PGD-EOT restart (the selector attack on a constant level); the worst case is the attacker's one submission
    per sample.

    :param classifier: ``(B, C, H, W)`` pixels in ``[0, 1]`` -> ``(B, nb_classes)`` logits.
    :param diffusion: the purifiers' diffusion model.
    :param x: ``(N, C, H, W)`` float clean images in ``[0, 1]`` (never modified).
    :param y: ``(N,)`` integer labels.
    :param reference: SSNI's reference statistics (``τ`` multiples are of ``reference.std``).
    :param nb_classes: number of classes.
    :param protocol: attacks, budget, selection and judging (e.g.
        ``AttackProtocol.from_budget("strong", eps=0.2, attacks=DEFAULT_ATTACKS)``; :data:`BUDGETS`).
    :param out: output folder: ``points/<id>/`` (one leaderboard run per point) and ``results.json``.
    :param points: the sweep; ``None``: :func:`frontier_points` with its defaults.
    :param defence_kwargs: settings of every defence (``sampler``, ``steps``, ``gradient``, ``score_steps``...);
        ``t_star`` and ``tau`` are set per point.
    :param info: JSON-ready description stored in the results (``model``, ``dataset``, ``command``, ``budget``...).
    :param device: ``"cpu"`` or ``"cuda"``.
    :param progress: progress bars (points, with an ETA; batches of the current point).
    :return: the ``results.json`` dict: ``settings``, ``points`` (one record per point, every per-example verdict
        under ``per_example``), ``runtime``.
    """
    if not isinstance(protocol, AttackProtocol):
        raise TypeError(f"protocol must be an art_ssni AttackProtocol, got {type(protocol).__name__}.")
    if not isinstance(reference, ReferenceStats):
        raise TypeError(f"reference must be an art_ssni.ReferenceStats, got {type(reference).__name__}.")
    points = list(points) if points is not None else frontier_points()
    if not points or not all(isinstance(p, FrontierPoint) for p in points):
        raise TypeError("points must be a non-empty sequence of FrontierPoint.")
    if len({p.id for p in points}) != len(points):
        raise ValueError("points must be distinct.")
    defence_kwargs = dict(defence_kwargs or {})
    clash = sorted({"t_star", "tau"} & set(defence_kwargs))
    if clash:
        raise ValueError(f"defence_kwargs must not set {clash}: every point sets them.")
    eps = float(protocol.eps)
    budget = str(dict(info or {}).get("budget", "custom"))
    root = Path(out)
    started = time.perf_counter()
    records: dict[str, dict[str, Any]] = {}
    results: dict[str, Any] = {}
    with world(device) as w:
        bar = tqdm(points, desc="frontier points", unit="point", disable=None if progress else True)
        for point in bar:
            bar.set_postfix_str(point.id)
            kwargs = {**defence_kwargs, "t_star": point.t_star}
            if point.tau_scale is not None:
                kwargs["tau"] = float(point.tau_scale) * float(reference.std)
            folder = root / _POINTS / point.id
            t0 = time.perf_counter()
            model_info = run_leaderboard(
                classifier,
                diffusion,
                x,
                y,
                protocol=protocol,
                out=folder,
                nb_classes=nb_classes,
                defence=point.defence,
                reference=reference,
                defence_kwargs=kwargs,
                info={"name": point.id, **dict(info or {})},
                device=device,
                progress=progress and w.rank == 0,
                record_levels=True,
                fixed_randomness=True,
            )
            if w.rank == 0:  # results.json after every point: a partial run is readable
                records[point.id] = _point_record(point, model_info, folder, time.perf_counter() - t0)
                results = _assemble(points, records, protocol, budget, x.shape[0], eps, reference, defence_kwargs, info)
                results["runtime"] = {
                    "world_size": w.size,
                    "wall_seconds_this_run": round(time.perf_counter() - started, 3),
                    "batch_seconds_total": round(sum(r["batch_seconds"] for r in records.values()), 3),
                    "device": device,
                }
                write_json_atomic(root / _RESULTS, results)
        bar.close()
        w.barrier()
    return results


def _assemble(
    points: Sequence[FrontierPoint],
    records: Mapping[str, dict[str, Any]],
    protocol: AttackProtocol,
    budget: str,
    n: int,
    eps: float,
    reference: ReferenceStats,
    defence_kwargs: Mapping[str, Any],
    info: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The ``results.json`` dict of the finished points (``complete`` says whether every point has finished)."""
    done = [p for p in points if p.id in records]
    for point in done:
        _add_tests(records[point.id], point, done, records)
    return {
        "complete": len(done) == len(points),
        "pending": [p.id for p in points if p.id not in records],
        "settings": {
            "protocol": {**protocol.to_dict(), "budget": budget},
            "eps": float(eps),
            "n": int(n),
            "defence_kwargs": {k: v for k, v in defence_kwargs.items() if isinstance(v, (int, float, str))},
            "reference": reference.to_dict(),
            "info": dict(info or {}),
        },
        "points": [records[p.id] for p in done],
        "versions": versions(),
    }


def _point_record(point: FrontierPoint, model_info: Mapping[str, Any], folder: Path, seconds: float) -> dict[str, Any]:
    store = ResultStore(folder)
    per_example = json.loads((folder / store.PER_EXAMPLE).read_text())
    t_clean, t_adv = _levels(store)
    spec = defence_registry.spec(point.defence)
    protocols = model_info["protocols"]
    purifier = model_info.get("purifier") or {}
    return {
        "id": point.id,
        "defence": point.defence,
        "base": type(spec.base).__name__,
        "reweight": spec.reweight,
        "t_star": point.t_star,
        "tau_scale": point.tau_scale,
        "tau": purifier.get("tau"),
        "n": int(model_info["n_ex"]),
        "attacks": list(model_info["protocol"]["attacks"]),
        "skipped_attacks": model_info["protocol"]["skipped_attacks"],
        "protocols": protocols,
        "deciding_attack": {p: deciding_attack(protocols[p]) for p in PROTOCOLS},
        "fixed_randomness": model_info.get("fixed_randomness"),
        "t_clean_mean": _mean(t_clean),
        "t_adversarial_mean": _mean(t_adv),
        "t_clean": t_clean,
        "t_adversarial": t_adv,
        "batch_seconds": float(model_info["runtime"]["batch_seconds_total"]),
        "seconds_this_run": round(seconds, 3),
        "folder": str(folder),
        "per_example": per_example,
    }


def _add_tests(
    record: dict[str, Any],
    point: FrontierPoint,
    points: Sequence[FrontierPoint],
    records: Mapping[str, Mapping[str, Any]],
) -> None:
    """McNemar p-values (clean, worst case; single's first re-judging, resubmit-N, vote-K) against the baseline."""
    base = _baseline(point, points)
    record["baseline"] = None if base is None else base.id
    record["mcnemar"] = None
    if base is None:
        return
    mine, theirs = record["per_example"], records[base.id]["per_example"]
    record["mcnemar"] = {
        p: {c: mcnemar_p(mine[p][c], theirs[p][c]) for c in ("clean", "worst_case")} for p in PROTOCOLS
    }
