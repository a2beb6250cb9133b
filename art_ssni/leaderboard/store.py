"""The on-disk state of a leaderboard run: a manifest, one file per finished batch, the merged results.

Layout of the output folder::

    run.json                  the run's settings and their key (a rerun with other settings is refused)
    batches/batch-000003.json one file per finished batch (per-example verdicts, seed, seconds)
    batches/batch-000003.adv.safetensors  its clean inputs and every attack's outputs (re-judged without
                              re-attacking by ``art-ssni rejudge``)
    model_info.json           the merged RobustBench-style results (written by rank 0 at the end)
    per_example.json          the merged per-example verdicts

Every file is written atomically (a temporary file in the same folder, then ``os.replace``), so an interrupted
run leaves only complete files: a rerun skips the batches that have a file and loses at most the batch that was
running.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from art_ssni._common import write_json_atomic

__all__ = ["ResultStore", "config_key", "write_json_atomic"]


def config_key(config: Any) -> str:
    """SHA-256 of the canonical JSON of ``config`` (the identity of a run's settings)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            out += _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if old == new else [prefix.rstrip(".")]


class ResultStore:
    """The output folder of one run (see the module docstring for the layout).

    :param root: the output folder (created when missing).
    """

    MANIFEST = "run.json"
    BATCHES = "batches"
    MODEL_INFO = "model_info.json"
    PER_EXAMPLE = "per_example.json"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def batch_path(self, batch: int) -> Path:
        return self.root / self.BATCHES / f"batch-{int(batch):06d}.json"

    def adversarial_path(self, batch: int) -> Path:
        """The batch's stored adversarial examples (:func:`~art_ssni.evaluation.stored.save_adversarial`)."""
        return self.root / self.BATCHES / f"batch-{int(batch):06d}.adv.safetensors"

    def open(self, config: dict[str, Any], *, create: bool) -> str:
        """Check (and with ``create``, write) the manifest for ``config``; returns the run key.

        :raises ValueError: when the folder holds a run with other settings (the message names the settings).
        """
        key = config_key(config)
        manifest = self.root / self.MANIFEST
        if manifest.is_file():
            old = json.loads(manifest.read_text())
            if old.get("key") != key:
                diff = _differences(old.get("config", {}), config) or ["(unknown)"]
                raise ValueError(
                    f"out: {str(self.root)!r} holds results of a run with other settings ({', '.join(diff)}); "
                    "use another output folder or delete it."
                )
        elif create:
            write_json_atomic(manifest, {"key": key, "config": config})
        return key

    def load_batch(self, batch: int, key: str) -> dict[str, Any] | None:
        """The record of a finished batch of run ``key``, or ``None`` when it has not finished."""
        path = self.batch_path(batch)
        if not path.is_file():
            return None
        record = json.loads(path.read_text())
        if record.get("key") != key or record.get("batch") != int(batch):
            raise ValueError(f"out: {str(path)!r} belongs to another run; use another output folder or delete it.")
        return record

    def save_batch(self, record: dict[str, Any]) -> None:
        """Write a finished batch's record (atomically)."""
        write_json_atomic(self.batch_path(record["batch"]), record)

    def save_results(self, model_info: dict[str, Any], per_example: dict[str, Any]) -> None:
        """Write the merged results (atomically)."""
        write_json_atomic(self.root / self.PER_EXAMPLE, per_example)
        write_json_atomic(self.root / self.MODEL_INFO, model_info)
