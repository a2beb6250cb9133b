"""The one attack registry: what each attack needs of the defence, applicability and building (issue 14 item 3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from art_ssni import SSNIPreprocessor
from art_ssni.attacks import BPDAEOT, PGDEOT, ScoreAwarePGD, registry
from art_ssni.attacks.protocol import AttackProtocol
from art_ssni.attacks.registry import ATTACKS, AttackEntry, AttackSettings, applicable, build, substitutes
from art_ssni.attacks.requirements import Requires, meets
from art_ssni.evaluation.compare import defended_classifier
from art_ssni.ssni.bases import GNS


def classifier(pre):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    return defended_classifier(net, pre, input_shape=(1, 8, 8), nb_classes=10)


def purifier(model, images, **kw):
    pre = SSNIPreprocessor(model, t_star=4, score_steps=2, seed=0, device_type="cpu", **kw)
    if pre.reweight != "constant":
        pre.fit(images)
    return pre


def test_requirements_are_declared_on_the_attack_classes():
    assert PGDEOT.defence_requirements == ()
    assert BPDAEOT.defence_requirements == (Requires.PURIFIER,)
    assert set(ScoreAwarePGD.defence_requirements) == {Requires.PURIFIER, Requires.SELECTOR}
    assert ATTACKS["score-aware-st"].needs[-1] is Requires.SINGLE_STAGE


def test_what_each_defence_offers(model, images):
    assert meets(classifier(None)) == frozenset()
    assert meets(classifier(purifier(model, images, reweight="constant"))) == {Requires.PURIFIER, Requires.SINGLE_STAGE}
    assert meets(classifier(purifier(model, images))) == set(Requires)
    gns = classifier(purifier(model, images, base=GNS(stages=(3, 2))))
    assert meets(gns) == {Requires.PURIFIER, Requires.SELECTOR}


def test_applicable_skips_with_the_reason(model, images):
    names = list(ATTACKS)
    run, skipped = applicable(names, meets(classifier(None)))
    assert run == ["rand-aa", "pgd-eot"] and set(skipped) == set(names) - {"rand-aa", "pgd-eot"}  # need a purifier
    gns = classifier(purifier(model, images, base=GNS(stages=(3, 2))))
    run, skipped = applicable(names, meets(gns))
    assert list(skipped) == ["score-aware-st"] and "single-stage" in skipped["score-aware-st"]
    with pytest.raises(ValueError, match=r"attacks must be among .*got \['fgsm'\]"):
        applicable(["fgsm"], set())


def test_build_uses_the_settings_and_the_defence_eot(model, images):
    pre = purifier(model, images, eot_samples=4)
    clf = classifier(pre)
    attacks = build(list(ATTACKS), clf, AttackProtocol(eps=0.1, iterations=3, eot=8, select_draws=2, seed=5))
    assert list(attacks) == ["apgd-ce", "apgd-dlr", *(name for name in ATTACKS if name != "rand-aa")]
    pgd = attacks["pgd-eot"]
    assert isinstance(pgd, PGDEOT) and pgd.max_iter == 3 and pgd.select_draws == 2 and pgd.seed == 5
    assert pgd.eot_iter == 2  # 8 purifications per gradient, 4 of them in each call of the defence
    assert attacks["score-aware-st"].eot_iter == 8  # bypasses eot_samples
    undefended = build(["pgd-eot"], classifier(None), AttackProtocol(eps=0.1, eot=8))
    assert undefended["pgd-eot"].eot_iter == 1  # a deterministic classifier: EOT would repeat one gradient


def test_the_selector_weights_reach_the_attacks(model, images):
    """λ, the stealth quantile, the temperature and the vote's K (issue 17 item 5): settings -> attacks, and the
    leaderboard protocol records each with the attack that uses it."""
    clf = classifier(purifier(model, images))
    s = AttackProtocol(eps=0.1, iterations=1, eot=2, lam=0.3, stealth_quantile=0.1, temperature=2.0, votes=5)
    attacks = build(["score-aware", "score-aware-stealth", "selective-eot", "selective-eot-vote"], clf, s)
    assert attacks["score-aware"].lam == 0.3
    assert attacks["score-aware-stealth"].stealth_quantile == 0.1 and attacks["score-aware-stealth"].lam == 0.3
    assert attacks["selective-eot"].temperature == 2.0
    assert attacks["selective-eot-vote"].protocol == "vote" and attacks["selective-eot-vote"].votes == 5
    protocol = AttackProtocol(
        eps=0.1, attacks=("selective-eot", "score-aware-stealth"), stealth_quantile=0.1, temperature=2.0, votes=3
    )
    built = protocol.build(clf, seed=0)
    assert built["selective-eot"].temperature == 2.0 and built["score-aware-stealth"].stealth_quantile == 0.1
    described = protocol.describe(meets(clf))
    assert described["attacks"]["selective-eot"]["temperature"] == 2.0
    assert described["attacks"]["score-aware-stealth"]["stealth_quantile"] == 0.1
    assert "temperature" not in described and "stealth_quantile" not in described  # one home: the attack's entry


def test_cli_selector_weight_options():
    from art_ssni.cli import build_parser

    parser = build_parser()
    for command in (["evaluate"], ["leaderboard"], ["frontier"]):
        args = parser.parse_args([*command, "--lam", "0.5", "--stealth-quantile", "0.05", "--temperature", "1"])
        assert (args.lam, args.stealth_quantile, args.temperature) == (0.5, 0.05, 1.0)
    defaults = parser.parse_args(["evaluate"])
    s = AttackProtocol(eps=0.1)
    assert (defaults.lam, defaults.stealth_quantile, defaults.temperature) == (s.lam, s.stealth_quantile, s.temperature)
    for bad in (["--lam", "-1"], ["--stealth-quantile", "1"], ["--temperature", "0"], ["--temperature", "nan"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["evaluate", *bad])


def test_adding_an_attack_is_one_registry_entry(monkeypatch, images):
    entry = AttackEntry(
        lambda est, s: {"my-pgd": PGDEOT(est, **s.pgd_kwargs(est))}, needs=(), description="PGD under another name"
    )
    monkeypatch.setitem(registry.ATTACKS, "my-pgd", entry)
    clf = classifier(None)
    attacks = build(["my-pgd"], clf, AttackProtocol(eps=0.05, iterations=1))
    y = np.argmax(clf.predict(images[:2]), axis=1)
    assert attacks["my-pgd"].generate(images[:2], y).shape == images[:2].shape


def test_budget_equal_suites_put_a_pgd_eot_restart_in_the_place_of_an_inapplicable_attack(model, images):
    protocol = AttackProtocol(eps=0.1, attacks=("pgd-eot", "score-aware"), iterations=2, eot=2, seed=3)
    constant = classifier(purifier(model, images, reweight="constant"))
    ssni = classifier(purifier(model, images))
    on_diffpure, on_ssni = protocol.build(constant), protocol.build(ssni)
    assert list(on_diffpure) == list(on_ssni) == ["pgd-eot", "score-aware"]  # the same number of attack runs
    stand_in = on_diffpure["score-aware"]
    assert type(stand_in) is PGDEOT and isinstance(on_ssni["score-aware"], ScoreAwarePGD)
    assert stand_in.seed != on_diffpure["pgd-eot"].seed  # a restart with its own seed, same budget
    assert (stand_in.max_iter, stand_in.step_size) == (
        on_diffpure["pgd-eot"].max_iter,
        on_diffpure["pgd-eot"].step_size,
    )
    notes = substitutes(protocol.attacks, meets(constant), protocol)
    assert list(notes) == ["score-aware"] and notes["score-aware"].startswith("pgd-eot restart (seed ")
    described = protocol.describe(meets(constant))
    assert list(described["attacks"]) == ["pgd-eot", "score-aware"]
    assert "substitute" in described["attacks"]["score-aware"] and described["substituted_attacks"] == notes
    assert substitutes(protocol.attacks, meets(ssni), protocol) == {}


def test_attack_settings_is_a_deprecated_alias_of_the_protocol():
    with pytest.warns(DeprecationWarning, match="AttackSettings is deprecated"):
        s = AttackSettings(eps=0.1, norm=2, max_iter=7, eot=3)
    assert isinstance(s, AttackProtocol) and (s.threat_model, s.iterations, s.eot) == ("L2", 7, 3)
