"""Re-judge a stored run under another judging protocol without re-attacking (``art-ssni rejudge RUN_DIR``).

A run of ``art-ssni evaluate`` stores every defence's adversarial examples in ``RUN_DIR/adversarial/`` and a
leaderboard run (each frontier point is one) stores them per batch in ``RUN_DIR/batches/``
(:mod:`art_ssni.evaluation.stored`). :func:`rejudge` rebuilds each defence from the recorded settings, reads the
stored candidates (refusing a corrupt or mismatched file), and runs only the judging step,
:func:`~art_ssni.evaluation.robust.judge_submissions`: the attacker's pick on its selection draws and the
protocols' fresh verdicts. With the recorded protocol it reproduces the recorded verdicts exactly (every judging
stream is seeded); with other ``votes`` / ``redraws`` / ``resubmit`` / ``select_draws`` it rewrites the results
under those. Runs on the shipped zoo only (other models are not recorded by value: call ``judge_submissions``).
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Any

from art_ssni import defences as defence_registry
from art_ssni._common import art_device_type, write_json_atomic
from art_ssni.attacks.protocol import AttackProtocol
from art_ssni.evaluation.compare import defended_classifier, levels_used
from art_ssni.evaluation.records import array_fingerprint
from art_ssni.evaluation.robust import judge_submissions
from art_ssni.evaluation.run import ADVERSARIAL_FOLDER, defence_settings
from art_ssni.evaluation.stored import load_adversarial
from art_ssni.ssni.reference import ReferenceStats

__all__ = ["JUDGING", "rejudge"]

#: the protocol fields a re-judging may change (the attacks and their budget are fixed by the stored outputs)
JUDGING = ("votes", "redraws", "resubmit", "select_draws")


def _protocol(record: dict[str, Any], changes: dict[str, Any]) -> AttackProtocol:
    fields = set(AttackProtocol.__dataclass_fields__)
    kept = {k: v for k, v in record.items() if k in fields}
    kept["eps_step"] = record["eps_step"] if record.get("eps_step_given") else None
    return AttackProtocol(**kept).replace(**changes)


def rejudge(run_dir: str | os.PathLike[str], *, device: str = "cpu", **changes: Any) -> dict[str, Any]:
    """Re-judge the ``art-ssni evaluate`` run in ``run_dir`` and rewrite its ``results.json``; returns the results.

    :param run_dir: the run's ``--out`` folder (``results.json`` and ``adversarial/``).
    :param device: ``"cpu"`` or ``"cuda"``.
    :param changes: new values of :data:`JUDGING` fields (``None`` keeps the recorded one).
    :raises ValueError: for a field that is not a judging field, a run on other models than the zoo's, or a
        missing, corrupt or mismatched stored file.
    """
    from art_ssni import zoo

    changes = {k: v for k, v in changes.items() if v is not None}
    bad = sorted(set(changes) - set(JUDGING))
    if bad:
        raise ValueError(f"rejudge: only {list(JUDGING)} can change without re-attacking, got {bad}.")
    root = Path(run_dir)
    path = root / "results.json"
    if not path.is_file():
        raise ValueError(f"run_dir: {str(root)!r} holds no results.json of an art-ssni evaluate run.")
    results = json.loads(path.read_text())
    s = results.get("settings", {})
    if "protocol" not in s or "defences" not in results:
        raise ValueError(f"{path}: not a results file of art-ssni evaluate >= 0.4 (no protocol record).")
    if s.get("own_models") or not s.get("zoo"):
        raise ValueError(f"{path}: the run used its own models; re-judge it with judge_submissions in Python.")
    protocol = _protocol(s["protocol"], changes)
    models = zoo.load(s["zoo"], device=device)
    n = int(s["n_images"])
    x, y = models.x_test[:n], models.y_test[:n]
    if array_fingerprint(x, y) != results["fingerprints"]["data_sha256"]:
        raise ValueError(f"{path}: the zoo's test data are not the data of this run (fingerprint differs).")
    reference = ReferenceStats.from_dict(s["reference"]) if s.get("reference") else None
    kwargs = {k: v for k, v in s["defence"].items() if k != "t_star"}
    for row in results["defences"]:
        name = row["defence"]
        pre = None
        if name != "none":
            own = defence_settings(name, tuple(x.shape[1:]), int(models.t_star), s.get("t_star_given"), kwargs)
            pre = defence_registry.make(
                name,
                models.diffusion,
                reference=reference,
                device_type=art_device_type(device),
                **{"seed": protocol.seed, **own},
            )
        clf = defended_classifier(
            models.classifier,
            pre,
            input_shape=tuple(x.shape[1:]),
            nb_classes=int(models.nb_classes),
            clip_values=models.clip_values,
            device_type=art_device_type(device),
        )
        names = [c for c in row["result"]["protocols"]["single"] if c not in ("clean", "worst_case")]
        stored = load_adversarial(
            root / ADVERSARIAL_FOLDER / f"{name}.safetensors", x=x, y=y, attacks=names, clip_values=models.clip_values
        )
        result = judge_submissions(clf, x, y, stored, **protocol.judging())
        row["result"] = result.to_dict()
        if pre is not None and row.get("t_clean"):
            pre.reset_generator()
            row["t_adversarial"] = levels_used(clf, result.worst_case_inputs).tolist()
            row["norms_adversarial"] = pre.score_norms(result.worst_case_inputs).tolist()
            row["worst_case_source"] = list(result.worst_case_source)
    s["protocol"] = protocol.to_dict()
    results["rejudged"] = {
        "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "changes": changes,
    }
    write_json_atomic(path, results, indent=2)
    return results
