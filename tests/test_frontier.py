"""The frontier sweep: its points, baselines, paired tests, resumable runs on a tiny model, and its plots."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from art_ssni import ReferenceStats
from art_ssni.attacks.protocol import AttackProtocol
from art_ssni.evaluation.stats import mcnemar_p
from art_ssni.leaderboard.frontier import (
    BUDGETS,
    FrontierPoint,
    _add_tests,
    _baseline,
    frontier,
    frontier_points,
)
from art_ssni.leaderboard.merge import deciding_attack

REF = ReferenceStats(mean=10.0, std=2.0, min=6.0, max=14.0, count=100, score_steps=4)


def tiny_cnn() -> torch.nn.Module:
    torch.manual_seed(1)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(8 * 64, 10)
    ).eval()


# ------------------------------------------------------------------------------------------------ the points
def test_default_points_sweep_t_star_and_tau_at_the_middle():
    ids = [p.id for p in frontier_points()]
    expected = []
    for t in (50, 100, 150, 200):
        expected += [f"diffpure_t{t}", f"ssni-n_t{t}_tau1", f"ssni-l_t{t}"]
        if t == 150:  # sorted (50, 100, 150, 200)[2]
            expected += ["ssni-n_t150_tau0.5", "ssni-n_t150_tau2"]
    assert ids == expected


def test_tau_sweep_off_the_grid_brings_its_own_baseline():
    ids = [p.id for p in frontier_points(t_stars=[100], tau_scales=[0.5], tau_t_star=120)]
    assert ids == ["diffpure_t100", "ssni-n_t100_tau1", "ssni-l_t100", "diffpure_t120", "ssni-n_t120_tau0.5"]
    assert [p.id for p in frontier_points(t_stars=[100], tau_scales=[], tau_t_star=120)] == [
        "diffpure_t100",
        "ssni-n_t100_tau1",
        "ssni-l_t100",
    ]


def test_the_tau_sweep_is_for_the_swept_defences_only():
    points = frontier_points(
        ["diffpure", "ssni-n"], [200], tau_scales=[0.5, 1, 2], extra_defences=["gns", "gns+ssni-n"]
    )
    assert [p.id for p in points] == [
        "diffpure_t200",
        "ssni-n_t200_tau1",
        "ssni-n_t200_tau0.5",
        "ssni-n_t200_tau2",
        "gns_t200",
        "gns-ssni-n_t200_tau1",
    ]


def test_extra_defences_run_at_one_t_star_with_their_own_baseline():
    points = frontier_points(["diffpure", "ssni-n"], [100, 150], tau_scales=[], extra_defences=["gns", "gns+ssni-n"])
    ids = [p.id for p in points]
    assert ids == [
        "diffpure_t100",
        "ssni-n_t100_tau1",
        "diffpure_t150",
        "ssni-n_t150_tau1",
        "gns_t150",
        "gns-ssni-n_t150_tau1",
    ]
    by_id = {p.id: p for p in points}
    assert _baseline(by_id["gns-ssni-n_t150_tau1"], points).id == "gns_t150"
    assert _baseline(by_id["ssni-n_t150_tau1"], points).id == "diffpure_t150"
    assert _baseline(by_id["diffpure_t150"], points) is None
    assert _baseline(FrontierPoint("ssni-l", 200), points) is None  # no DiffPure at t* = 200


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(t_stars=[]), "t_stars must be distinct ints >= 1"),
        (dict(t_stars=[100, 100]), "t_stars must be distinct ints >= 1"),
        (dict(t_stars=[0]), "t_stars must be distinct ints >= 1"),
        (dict(t_stars=[1.5]), "t_stars must be distinct ints >= 1"),
        (dict(tau_scales=[0.0]), "tau_scales must be finite numbers > 0"),
        (dict(defences=["nope"]), "defences must be non-empty names among"),
        (dict(extra_defences=["nope"]), "defences must be non-empty names among"),
        (dict(tau_t_star=0), "tau_t_star must be an int >= 1 or None"),
    ],
)
def test_bad_sweeps_are_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        frontier_points(**kw)


def test_deciding_attack_is_the_lowest():
    table = {"attacks": {"pgd-eot": {"accuracy": 0.5}, "low-frequency": {"accuracy": 0.25}}}
    assert deciding_attack(table) == "low-frequency"
    assert deciding_attack({"attacks": {}}) is None


def test_mcnemar_of_a_point_against_its_baseline():
    points = [FrontierPoint("diffpure", 100), FrontierPoint("ssni-n", 100, 1.0)]
    base = [True] * 10 + [False] * 10
    mine = [True] * 18 + [False] * 2  # 8 discordant pairs, all in favour of SSNI-N
    verdicts = {p: {"clean": base, "worst_case": base} for p in ("single", "resubmit", "vote")}
    records = {
        "diffpure_t100": {"per_example": verdicts},
        "ssni-n_t100_tau1": {"per_example": {p: {"clean": base, "worst_case": mine} for p in verdicts}},
    }
    _add_tests(records["ssni-n_t100_tau1"], points[1], points, records)
    tests = records["ssni-n_t100_tau1"]["mcnemar"]
    assert tests["vote"]["clean"] == 1.0
    assert tests["single"]["worst_case"] == pytest.approx(2 * 0.5**8)
    assert records["ssni-n_t100_tau1"]["baseline"] == "diffpure_t100"


# ------------------------------------------------------------------------------------------------ a tiny run
def tiny_frontier(model, out, **kw):
    rng = np.random.default_rng(0)
    x, y = rng.random((4, 1, 8, 8), dtype=np.float32), rng.integers(0, 10, 4)
    x_before = x.copy()
    budget = dict(attacks=kw.pop("attacks", ("pgd-eot", "score-aware-stealth")), iterations=1, eot=1, votes=3)
    protocol = AttackProtocol.from_budget(kw.pop("budget", "quick"), eps=0.1, batch_size=2, **budget)
    settings = dict(
        reference=REF,
        nb_classes=10,
        protocol=protocol,
        out=out,
        points=frontier_points(["diffpure", "ssni-n"], [3, 5], tau_scales=[]),
        defence_kwargs=dict(score_steps=4, sampler="ddim", steps=2),
        info={"budget": "quick"},
        progress=False,
    )
    results = frontier(tiny_cnn(), model, x, y, **{**settings, **kw})
    np.testing.assert_array_equal(x, x_before)
    return results


def test_tiny_frontier_run_resumes_and_records_everything(model, tmp_path):
    results = tiny_frontier(model, tmp_path)
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["points"] == json.loads(json.dumps(results["points"]))
    points = {p["id"]: p for p in results["points"]}
    assert list(points) == ["diffpure_t3", "ssni-n_t3_tau1", "diffpure_t5", "ssni-n_t5_tau1"]
    for p in points.values():
        assert p["n"] == 4
        assert len(p["t_clean"]) == len(p["t_adversarial"]) == 4
        for protocol in ("single", "resubmit", "vote"):
            assert len(p["per_example"][protocol]["worst_case"]) == 4
            flags = p["per_example"][protocol]["worst_case"]
            if protocol != "single":
                assert p["protocols"][protocol]["worst_case"]["accuracy"] == pytest.approx(np.mean(flags))
    # DiffPure's noise level is t*; the selector attack applies to SSNI only: DiffPure gets a PGD-EOT restart in
    # its place, so both face the same number of attack runs
    assert points["diffpure_t5"]["t_clean"] == [5] * 4 and points["diffpure_t5"]["mcnemar"] is None
    assert points["diffpure_t5"]["attacks"] == points["ssni-n_t5_tau1"]["attacks"] == ["pgd-eot", "score-aware-stealth"]
    assert "score-aware-stealth" in points["diffpure_t5"]["skipped_attacks"]
    assert points["ssni-n_t5_tau1"]["tau"] == pytest.approx(REF.std)
    ssni, base = points["ssni-n_t5_tau1"], points["diffpure_t5"]
    assert ssni["baseline"] == "diffpure_t5"
    for protocol in ("single", "vote"):
        for cand in ("clean", "worst_case"):
            expected = mcnemar_p(ssni["per_example"][protocol][cand], base["per_example"][protocol][cand])
            assert ssni["mcnemar"][protocol][cand] == expected
    # the recorded adversarial level is the level of the attacker's submission: where it submitted the clean
    # input, the (fixed-bank, deterministic) level is the clean one
    for t_clean, t_adv, source in zip(
        ssni["t_clean"], ssni["t_adversarial"], ssni["per_example"]["worst_case_source"], strict=True
    ):
        assert source != "clean" or t_adv == t_clean
    assert results["settings"]["protocol"]["iterations"] == 1 and results["settings"]["protocol"]["budget"] == "quick"
    # a rerun reads every batch back: same verdicts, nothing recomputed
    again = tiny_frontier(model, tmp_path)
    assert [p["per_example"] for p in again["points"]] == [p["per_example"] for p in results["points"]]
    for point in again["points"]:
        info = json.loads((tmp_path / "points" / point["id"] / "model_info.json").read_text())
        assert info["runtime"]["batches_computed_this_run"] == 0


def test_tau_is_a_multiple_of_the_reference_std(model, tmp_path):
    results = tiny_frontier(
        model,
        tmp_path,
        points=[FrontierPoint("ssni-n", 5, 0.5)],
        attacks=("pgd-eot",),
        defence_kwargs=dict(score_steps=4, sampler="ddim", steps=2),
    )
    assert results["points"][0]["tau"] == pytest.approx(0.5 * REF.std)


@pytest.mark.parametrize(
    "kw, error, message",
    [
        (dict(budget="huge"), ValueError, "budget must be one of"),
        (dict(reference=None), TypeError, "reference must be an art_ssni.ReferenceStats"),
        (dict(points=[]), TypeError, "points must be a non-empty sequence of FrontierPoint"),
        (dict(points=[FrontierPoint("diffpure", 3)] * 2), ValueError, "points must be distinct"),
        (dict(attacks=("fgsm",)), ValueError, "attacks must be distinct names among"),
        (dict(defence_kwargs=dict(t_star=3)), ValueError, "defence_kwargs must not set"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(model, tmp_path, kw, error, message):
    with pytest.raises(error, match=message):
        tiny_frontier(model, tmp_path, **kw)
    assert not (tmp_path / "points").exists()


def test_budget_presets():
    assert BUDGETS["paper"]["iterations"] == 200 and BUDGETS["paper"]["eot"] == 20  # the SSNI paper's PGD-EOT
    assert BUDGETS["quick"]["iterations"] < BUDGETS["paper"]["iterations"]
    assert BUDGETS["quick"]["eot"] < BUDGETS["strong"]["eot"] <= BUDGETS["paper"]["eot"]  # the convergence study
    assert all(b["votes"] % 2 == 1 for b in BUDGETS.values())


# ------------------------------------------------------------------------------------------------ the plots
def test_plots_of_a_tiny_run(model, tmp_path):
    from art_ssni.cli_frontier import plot_frontier

    results = tiny_frontier(
        model, tmp_path, points=frontier_points(["diffpure", "ssni-n"], [3, 5], tau_scales=[0.5, 1])
    )
    written = plot_frontier(results, tmp_path)
    names = sorted(p.name for p in written)
    assert names == [
        "accuracy_vs_t_star.png",
        "accuracy_vs_tau.png",
        "chosen_t.png",
        "frontier_single.png",
        "frontier_vote.png",
    ]
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tau_plot_draws_one_line_per_defence(tmp_path):
    """A τ sweep is the same defence at several τ: SSNI-N at 1 plus GNS+SSNI-N at 0.5 and 2 (one each) is none."""
    from art_ssni.plots import accuracy_vs_tau

    points = [
        {"defence": "ssni-n", "t_star": 200, "tau_scale": 1.0},
        {"defence": "gns+ssni-n", "t_star": 200, "tau_scale": 0.5},
        {"defence": "gdmp+ssni-n", "t_star": 200, "tau_scale": 2.0},
    ]
    assert accuracy_vs_tau(points, tmp_path / "tau.png") is False and not (tmp_path / "tau.png").exists()


def test_every_point_has_the_fixed_randomness_diagnostic(model, tmp_path):
    """PGD under fixed, known purification noise (a diagnostic column, never a protocol)."""
    results = tiny_frontier(model, tmp_path, points=[FrontierPoint("ssni-n", 5, 1.0)], attacks=("pgd-eot",))
    point = results["points"][0]
    fixed = point["fixed_randomness"]
    assert fixed["n"] == 4 and len(point["per_example"]["fixed_randomness"]) == 4
    assert fixed["accuracy"] == pytest.approx(np.mean(point["per_example"]["fixed_randomness"]))
    assert "fixed_randomness" not in point["protocols"]


def test_fixed_noise_makes_the_defence_deterministic_and_is_undone(model):
    from art_ssni.evaluation.compare import defended_classifier
    from art_ssni.evaluation.fixed_randomness import fixed_noise
    from art_ssni.preprocessor import SSNIPreprocessor

    pre = SSNIPreprocessor(model, reweight="constant", t_star=4, sampler="ddim", steps=2, seed=None, device_type="cpu")
    clf = defended_classifier(tiny_cnn(), pre, input_shape=(1, 8, 8), nb_classes=10)
    x = np.random.default_rng(1).random((3, 1, 8, 8), dtype=np.float32)
    with fixed_noise(clf, 7):
        a, b = clf.predict(x), clf.predict(x)
    np.testing.assert_array_equal(a, b)
    assert pre.seed is None and "forward" not in vars(pre)
    assert not np.array_equal(clf.predict(x), clf.predict(x))  # fresh noise again
