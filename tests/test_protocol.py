"""The one attack protocol (issue 23 item 4): threat-model spellings, the one step rule, budgets, validation."""

from __future__ import annotations

import numpy as np
import pytest

from art_ssni.attacks.protocol import BUDGETS, AttackProtocol


@pytest.mark.parametrize("spelling", [np.inf, float("inf"), "inf", "Linf", "linf"])
def test_every_spelling_of_linf_means_the_same(spelling):
    p = AttackProtocol(eps=0.1, threat_model=spelling)
    assert (p.threat_model, p.norm) == ("Linf", "inf")
    assert p == AttackProtocol(eps=0.1, threat_model="Linf")


@pytest.mark.parametrize("spelling", [2, 2.0, "2", "L2", "l2"])
def test_every_spelling_of_l2_means_the_same(spelling):
    assert AttackProtocol(eps=0.5, threat_model=spelling).norm == 2


@pytest.mark.parametrize("iterations", [1, 2, 3, 4, 10, 20, 50, 200])
def test_the_default_step_reaches_eps_at_every_budget(iterations):
    p = AttackProtocol(eps=0.2, attacks=("pgd-eot", "score-aware"), iterations=iterations)
    assert p.reaches_eps and iterations * p.step >= 2.5 * 0.2 - 1e-12
    assert p.step_of("pgd-eot") == p.step_of("score-aware")  # one step for every attack name


def test_the_step_rule_keeps_the_papers_step_and_eps_over_4_at_10_iterations():
    assert AttackProtocol(eps=8 / 255, attacks=("pgd-eot",)).step == pytest.approx(0.007)  # 200 iterations
    assert AttackProtocol(eps=0.2, iterations=10).step == pytest.approx(0.05)


def test_an_explicit_step_that_cannot_reach_eps_is_recorded_as_such():
    p = AttackProtocol(eps=0.2, iterations=4, eps_step=0.0446)
    assert not p.reaches_eps and p.to_dict()["reaches_eps"] is False and p.to_dict()["eps_step_given"] is True


def test_from_budget_and_overrides():
    p = AttackProtocol.from_budget("strong", eps=0.2, attacks=("pgd-eot",), eot=None, votes=5)
    assert (p.iterations, p.eot, p.select_draws, p.votes) == (20, 16, 8, 5)
    assert set(BUDGETS) >= {"evaluate", "quick", "strong", "paper"}
    with pytest.raises(ValueError, match=r"budget must be one of \['evaluate', 'quick', 'strong', 'paper'\], got 'x'"):
        AttackProtocol.from_budget("x", eps=0.1)


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(threat_model="L1"), ValueError, r"threat_model must be 'Linf' \(np.inf, 'inf'\) or 'L2' \(2\), got 'L1'"),
        (dict(eps=0), ValueError, r"eps must be a finite number > 0, got 0"),
        (dict(attacks=("fgsm",)), ValueError, r"attacks must be distinct names among .*got \['fgsm'\]"),
        (dict(attacks="pgd-eot"), TypeError, r"attacks must be a sequence of attack names, got the string"),
        (dict(iterations=0), ValueError, r"iterations must be an int >= 1 or None, got 0"),
        (dict(votes=4), ValueError, r"votes must be an odd int >= 1, got 4"),
        (dict(select_draws=0), ValueError, r"select_draws must be an int >= 1, got 0"),
        (dict(eot=0), ValueError, r"eot must be an int >= 1, got 0"),
        (dict(verbose=1), ValueError, r"verbose must be a bool, got 1"),
    ],
)
def test_validation(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        AttackProtocol(**{"eps": 0.1, **kwargs})


def test_frozen():
    p = AttackProtocol(eps=0.1)
    with pytest.raises(AttributeError):
        p.eps = 0.2  # type: ignore[misc]
    assert p.replace(eps=0.2).eps == 0.2 and p.eps == 0.1
