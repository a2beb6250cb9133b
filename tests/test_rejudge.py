"""Stored adversarial examples and re-judging without re-attacking (issue 23 item 5)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from art_ssni.attacks.protocol import AttackProtocol
from art_ssni.evaluation.stored import load_adversarial, save_adversarial


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from art_ssni import zoo
    from art_ssni.evaluation.run import default_protocol, evaluate

    out = tmp_path_factory.mktemp("run")
    models = zoo.load("digits")
    protocol = default_protocol(0.2, iterations=1, eot=1, select_draws=2, votes=3, redraws=2, resubmit=2, seed=1)
    results = evaluate(
        models,
        protocol=protocol,
        defences=("diffpure", "ssni-n"),
        n_images=6,
        t_star=20,
        defence_kwargs={"steps": 2},
        out=out,
    )
    (out / "results.json").write_text(json.dumps(results))
    return out


def test_rejudging_with_the_recorded_protocol_reproduces_every_verdict(run_dir):
    from art_ssni.leaderboard.rejudge import rejudge

    before = json.loads((run_dir / "results.json").read_text())
    after = rejudge(run_dir)
    for old, new in zip(before["defences"], after["defences"], strict=True):
        assert new["result"]["per_example"] == old["result"]["per_example"], old["defence"]
        assert new["t_adversarial"] == old["t_adversarial"]
    assert after["rejudged"]["changes"] == {}


def test_rejudging_under_another_vote_changes_only_the_judging(run_dir):
    from art_ssni.leaderboard.rejudge import rejudge

    results = rejudge(run_dir, votes=5, redraws=3)
    assert results["settings"]["protocol"]["votes"] == 5 and results["settings"]["protocol"]["iterations"] == 1
    for row in results["defences"]:
        assert (
            row["result"]["settings"]["votes"] == 5
            and len(row["result"]["protocols"]["single"]["clean"]["redraws"]) == 3
        )
    with pytest.raises(ValueError, match=r"only \['votes', 'redraws', 'resubmit', 'select_draws'\] can change"):
        rejudge(run_dir, iterations=3)


def test_a_corrupt_or_mismatched_store_is_refused(run_dir, tmp_path):
    path = run_dir / "adversarial" / "diffpure.safetensors"
    stored = load_adversarial(path)
    assert list(stored) == ["pgd-eot", "score-aware"] and stored.metadata["defence"] == "diffpure"
    with pytest.raises(ValueError, match="stores the attacks"):
        load_adversarial(path, attacks=["pgd-eot"])
    with pytest.raises(ValueError, match="stored clean inputs are not this run's"):
        load_adversarial(path, x=stored.x[::-1])
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_adversarial(broken)
    outside = tmp_path / "outside.safetensors"
    save_adversarial(outside, stored.x, stored.y, {"a": np.clip(stored.x + 2.0, 0, 3)})
    with pytest.raises(ValueError, match=r"pixels outside \[0.0, 1.0\]"):
        load_adversarial(outside)
    with pytest.raises(ValueError, match="no stored adversarial examples"):
        load_adversarial(tmp_path / "missing.safetensors")


def test_protocol_round_trips_through_its_record():
    from art_ssni.leaderboard.rejudge import _protocol

    p = AttackProtocol(eps=0.2, attacks=("pgd-eot",), iterations=3, eot=2, eps_step=0.01, votes=3)
    assert _protocol(json.loads(json.dumps(p.to_dict())), {}) == p
    q = AttackProtocol(eps=0.2, attacks=("pgd-eot",), iterations=3)
    assert _protocol(q.to_dict(), {"votes": 5}) == q.replace(votes=5)
