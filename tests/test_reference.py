"""ReferenceStats: from norms, JSON round trip, validation on load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from art_ssni import ReferenceStats


def test_from_norms_values():
    norms = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    ref = ReferenceStats.from_norms(norms, score_steps=20)
    assert ref.mean == 3.0 and ref.min == 1.0 and ref.max == 5.0 and ref.count == 5
    assert ref.std == pytest.approx(np.std(norms, ddof=1))
    assert ref.quantiles["0.5"] == 3.0 and ref.score_steps == 20
    assert ReferenceStats.from_norms(torch.tensor([2.0, 4.0])).mean == 3.0


def test_json_round_trip(tmp_path):
    ref = ReferenceStats.from_norms(np.random.default_rng(0).normal(10, 2, 50), score_steps=20)
    ref.to_json(tmp_path / "ref.json")
    assert ReferenceStats.from_json(tmp_path / "ref.json") == ref
    assert not (tmp_path / "ref.json.tmp").exists()


@pytest.mark.parametrize(
    "data,match",
    [
        ({"mean": 1.0, "std": 1.0, "min": 0.0, "max": 2.0}, "miss the field"),
        ({"mean": 1.0, "std": 1.0, "min": 0.0, "max": 2.0, "count": 3, "extra": 1}, "unknown field"),
        ({"mean": float("nan"), "std": 1.0, "min": 0.0, "max": 2.0, "count": 3}, "mean must be a finite"),
        ({"mean": 1.0, "std": -1.0, "min": 0.0, "max": 2.0, "count": 3}, "std must be >= 0"),
        ({"mean": 3.0, "std": 1.0, "min": 0.0, "max": 2.0, "count": 3}, "min <= mean <= max"),
        ({"mean": 1.0, "std": 1.0, "min": 0.0, "max": 2.0, "count": 0}, "count must be an int >= 1"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_invalid_files_name_the_file(tmp_path, data, match):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=match) as err:
        ReferenceStats.from_json(path)
    assert "bad.json" in str(err.value)


def test_truncated_and_missing_files(tmp_path):
    path = tmp_path / "trunc.json"
    path.write_text('{"mean": 1.0, "st')
    with pytest.raises(ValueError, match="trunc.json"):
        ReferenceStats.from_json(path)
    with pytest.raises(FileNotFoundError, match="missing.json"):
        ReferenceStats.from_json(tmp_path / "missing.json")


def test_from_norms_rejects_empty_and_nan():
    with pytest.raises(ValueError, match="at least one"):
        ReferenceStats.from_norms([])
    with pytest.raises(ValueError, match="finite"):
        ReferenceStats.from_norms([1.0, float("inf")])
