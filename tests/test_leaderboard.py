"""The leaderboard runner: protocol, seeds, local data, atomic store, resume, merge, CLI (main env, no robustbench)."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from art_ssni import ReferenceStats
from art_ssni.attacks.requirements import Requires
from art_ssni.leaderboard import (
    ATTACKS,
    AttackProtocol,
    ResultStore,
    batch_seed,
    load_cifar10,
    load_cifar10_train,
    merge_records,
    parse_eps,
    run_leaderboard,
)
from art_ssni.leaderboard import runner as runner_module
from art_ssni.leaderboard.store import write_json_atomic

REF = ReferenceStats(mean=10.0, std=2.0, min=6.0, max=14.0, count=100, score_steps=4)
DEFENCE = dict(t_star=4, score_steps=4, sampler="ddim", steps=2)


def tiny_cnn() -> torch.nn.Module:
    torch.manual_seed(1)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(8 * 64, 10)
    ).eval()


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.random((5, 1, 8, 8), dtype=np.float32), rng.integers(0, 10, 5)


def small(**kw) -> AttackProtocol:
    settings = dict(eps=0.1, attacks=("rand-aa", "pgd-eot", "score-aware"), iterations=2, eot=2, batch_size=2)
    return AttackProtocol(**{**settings, **kw})


def run(model, data, out, protocol=None, **kw):
    x, y = data
    return run_leaderboard(
        tiny_cnn(),
        model,
        x,
        y,
        protocol=protocol or small(),
        out=out,
        nb_classes=10,
        defence=kw.pop("defence", "ssni-n"),
        reference=REF,
        defence_kwargs=DEFENCE,
        progress=False,
        **kw,
    )


def numbers(info: dict) -> dict:
    """Everything but run-time facts."""
    return {k: v for k, v in info.items() if k not in ("runtime", "versions")}


# ---------------------------------------------------------------------------------------------------- protocol
@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(eps=0.0), "eps must be a finite number > 0"),
        (dict(eps=0.1, threat_model="L1"), "threat_model must be 'Linf'"),
        (dict(eps=0.1, attacks=("fgsm",)), "attacks must be distinct names among"),
        (dict(eps=0.1, attacks=("pgd-eot", "pgd-eot")), "attacks must be distinct names among"),
        (dict(eps=0.1, iterations=0), "iterations must be an int >= 1 or None"),
        (dict(eps=0.1, eot=0), "eot must be an int >= 1"),
        (dict(eps=0.1, eps_step=-1.0), "eps_step must be a finite number > 0 or None"),
        (dict(eps=0.1, batch_size=True), "batch_size must be an int >= 1"),
        (dict(eps=0.1, seed=-1), "seed must be an int >= 0"),
        (dict(eps=0.1, votes=0), "votes must be an odd int >= 1"),
        (dict(eps=0.1, votes=2), "votes must be an odd int >= 1"),
        (dict(eps=0.1, lam=-1.0), "lam must be a finite number >= 0"),
        (dict(eps=0.1, stealth_quantile=1.0), r"stealth_quantile must be a number in \(0, 1\)"),
        (dict(eps=0.1, temperature=0.0), "temperature must be a finite number > 0"),
    ],
)
def test_protocol_validation(kw, message):
    with pytest.raises(ValueError, match=message):
        AttackProtocol(**kw)


def test_protocol_standard_settings():
    p = AttackProtocol(eps=8 / 255, attacks=ATTACKS)
    assert p.is_standard and p.iterations_of("rand-aa") == 100 and p.iterations_of("pgd-eot") == 200
    assert p.step == pytest.approx(0.007)  # the paper's step at 8/255
    assert AttackProtocol(eps=0.5, threat_model="L2").norm == 2
    run_, skipped = p.applicable({Requires.PURIFIER, Requires.SINGLE_STAGE})  # DiffPure: no score-aware attacks
    assert "score-aware" in skipped and "bpda-eot" in run_
    run_, skipped = p.applicable({Requires.PURIFIER, Requires.SELECTOR})  # GNS: straight-through t needs one stage
    assert list(skipped) == ["score-aware-st"] and "score-aware" in run_ and "single-stage" in skipped["score-aware-st"]
    run_, skipped = p.applicable(set())  # no defence: only the attacks that need nothing
    assert run_ == ["rand-aa", "pgd-eot"]
    desc = p.describe({Requires.PURIFIER, Requires.SELECTOR, Requires.SINGLE_STAGE})
    assert desc["attacks"]["rand-aa"]["eot"] == 20 and desc["attacks"]["rand-aa"]["initial_step"] == pytest.approx(
        16 / 255
    )
    assert not AttackProtocol(eps=0.1, iterations=5).is_standard


def test_batch_seed_depends_on_seed_and_batch_only():
    seeds = {batch_seed(0, b) for b in range(100)}
    assert len(seeds) == 100 and all(0 <= s < 2**31 for s in seeds)
    assert batch_seed(0, 3) == batch_seed(0, 3) != batch_seed(1, 3)


def test_parse_eps():
    assert parse_eps("8/255") == pytest.approx(8 / 255) and parse_eps("0.5") == 0.5
    for bad in ("0", "-1", "a/b", "1/0", "nan"):
        with pytest.raises(ValueError, match="eps must be"):
            parse_eps(bad)


# ---------------------------------------------------------------------------------------------------- data
def cifar_arrays(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3072), dtype=np.uint8), rng.integers(0, 10, n).tolist()


def test_cifar10_python_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    data, labels = cifar_arrays(7)
    with open(folder / "test_batch", "wb") as f:  # the archive's format: a pickled dict of bytes keys
        pickle.dump({b"batch_label": b"testing", b"data": data, b"labels": labels}, f, protocol=2)
    x, y = load_cifar10(tmp_path, n_ex=5)
    assert x.shape == (5, 3, 32, 32) and x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_allclose(x, data[:5].reshape(5, 3, 32, 32) / 255.0)  # first n_ex, in file order
    np.testing.assert_array_equal(y, labels[:5])
    for i, n in ((1, 3), (2, 4)):
        d, lab = cifar_arrays(n, seed=i)
        with open(folder / f"data_batch_{i}", "wb") as f:
            pickle.dump({"data": d, "labels": lab}, f)
    train = load_cifar10_train(tmp_path, n=5)  # spans data_batch_1 and data_batch_2
    np.testing.assert_allclose(train[3:], cifar_arrays(4, seed=2)[0][:2].reshape(2, 3, 32, 32) / 255.0)


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_cifar10_refuses_arbitrary_pickles(tmp_path):
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({"data": Evil(), "labels": [1]}, f)
    with pytest.raises(pickle.UnpicklingError, match="refusing to load builtins.print"):
        load_cifar10(tmp_path)


def test_cifar10_binary_and_npz(tmp_path):
    data, labels = cifar_arrays(4)
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    rows = np.concatenate([np.array(labels, dtype=np.uint8)[:, None], data], axis=1)
    rows.tofile(folder / "test_batch.bin")
    x, y = load_cifar10(tmp_path)
    np.testing.assert_allclose(x, data.reshape(4, 3, 32, 32) / 255.0)
    np.testing.assert_array_equal(y, labels)
    nhwc = data.reshape(4, 3, 32, 32).transpose(0, 2, 3, 1)
    np.savez(tmp_path / "c.npz", x_test=nhwc, y_test=np.array(labels))
    x2, y2 = load_cifar10(tmp_path / "c.npz", n_ex=3)
    np.testing.assert_allclose(x2, x[:3])
    np.testing.assert_array_equal(y2, labels[:3])


def test_cifar10_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py/test_batch"):
        load_cifar10(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_cifar10(tmp_path / "nope")
    with pytest.raises(ValueError, match="n_ex must be an int >= 1"):
        load_cifar10(tmp_path, n_ex=0)


# ---------------------------------------------------------------------------------------------------- store
def test_atomic_write_leaves_no_temporary_files(tmp_path):
    write_json_atomic(tmp_path / "a" / "b.json", {"x": 1})
    write_json_atomic(tmp_path / "a" / "b.json", {"x": 2})
    assert json.loads((tmp_path / "a" / "b.json").read_text()) == {"x": 2}
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["b.json"]
    with pytest.raises(TypeError):
        write_json_atomic(tmp_path / "a" / "b.json", {"x": object()})  # fails while writing the temporary file
    assert json.loads((tmp_path / "a" / "b.json").read_text()) == {"x": 2}
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["b.json"]


def test_store_refuses_other_settings(tmp_path):
    store = ResultStore(tmp_path)
    key = store.open({"a": 1, "b": {"c": 2}}, create=True)
    assert store.open({"a": 1, "b": {"c": 2}}, create=True) == key
    with pytest.raises(ValueError, match=r"other settings \(b\.c\)"):
        store.open({"a": 1, "b": {"c": 3}}, create=True)


def test_merge_records_by_hand():
    def rec(batch, seed, clean, ce, dlr, resub, vote):
        worst = [c and a and d for c, a, d in zip(clean, ce, dlr, strict=True)]
        names = ("clean", "apgd-ce", "apgd-dlr", "worst_case")
        return {
            "batch": batch,
            "seed": seed,
            "clean_correct": clean,
            "attack_correct": {"apgd-ce": ce, "apgd-dlr": dlr},
            "worst_case_correct": worst,
            "single_counts": {k: [sum(v), sum(v)] for k, v in zip(names, (clean, ce, dlr, worst), strict=True)},
            "resubmit_correct": dict(zip(names, resub, strict=True)),
            "vote_correct": dict(zip(names, vote, strict=True)),
            "worst_case_source": ["clean"] * len(clean),
        }

    recs = [
        rec(1, 7, [True], [True], [False], [[False]] * 4, [[True]] * 4),
        rec(0, 5, [True, False], [True, False], [True, True], [[True, False]] * 4, [[True, False]] * 4),
    ]
    summary, per = merge_records(recs, n_ex=3, batch_size=2)
    assert summary["clean_acc"] == pytest.approx(2 / 3) and summary["robust_acc"] == pytest.approx(1 / 3)
    single = summary["protocols"]["single"]
    assert single["attacks"]["apgd-dlr"]["accuracy"] == pytest.approx(2 / 3) and single["clean"]["n"] == 3
    lo, hi = single["worst_case"]["ci95"]
    assert lo < 1 / 3 < hi
    assert summary["protocols"]["resubmit"]["worst_case"]["accuracy"] == pytest.approx(1 / 3)
    assert summary["protocols"]["vote"]["worst_case"]["accuracy"] == pytest.approx(2 / 3)
    assert summary["autoattack_acc"] == pytest.approx(1 / 3)
    assert per["single"]["worst_case"] == [True, False, False] and per["batch_seeds"] == [5, 7]
    with pytest.raises(ValueError, match="expected batches 0..1 once each"):
        merge_records(recs[:1], n_ex=3, batch_size=2)


# ---------------------------------------------------------------------------------------------------- runner
def test_run_writes_valid_json_and_rerun_computes_nothing(model, data, tmp_path):
    info = run(model, data, tmp_path)
    stored = json.loads((tmp_path / "model_info.json").read_text())
    assert stored == json.loads(json.dumps(info))
    assert info["n_ex"] == 5 and info["runtime"]["batches"] == 3 and info["runtime"]["batches_computed_this_run"] == 3
    single = info["protocols"]["single"]
    assert set(single["attacks"]) == {"apgd-ce", "apgd-dlr", "pgd-eot", "score-aware"}
    assert info["purifier"]["reweight"] == "sigmoid" and info["purifier"]["eot_samples"] == 2
    assert not info["protocol"]["standard"] and info["protocol"]["attacks"]["pgd-eot"]["iterations"] == 2
    per = json.loads((tmp_path / "per_example.json").read_text())
    for name, record in info["protocols"]["vote"]["attacks"].items():
        assert record["accuracy"] == pytest.approx(np.mean(per["vote"][name]))
    sources = per["worst_case_source"]
    assert len(sources) == 5 and set(sources) <= {"clean", "apgd-ce", "apgd-dlr", "pgd-eot", "score-aware"}
    assert sorted(p.name for p in (tmp_path / "batches").iterdir()) == sorted(
        [f"batch-00000{i}.json" for i in range(3)] + [f"batch-00000{i}.adv.safetensors" for i in range(3)]
    )
    from art_ssni.evaluation.stored import load_adversarial

    x, y = data
    stored_batch = load_adversarial(tmp_path / "batches" / "batch-000001.adv.safetensors", x=x[2:4], y=y[2:4])
    assert list(stored_batch) == ["apgd-ce", "apgd-dlr", "pgd-eot", "score-aware"]
    assert all(np.abs(v - x[2:4]).max() <= 0.1 + 1e-6 for v in stored_batch.values())
    again = run(model, data, tmp_path)
    assert again["runtime"]["batches_computed_this_run"] == 0
    assert numbers(again) == numbers(info)


def test_resume_after_interruption_matches_uninterrupted_run(model, data, tmp_path, monkeypatch):
    reference = run(model, data, tmp_path / "full")
    real, calls = runner_module._run_batch, []

    def failing(*args, **kwargs):
        calls.append(args[5])
        if len(calls) == 2:
            raise KeyboardInterrupt  # interrupted while the second batch runs
        return real(*args, **kwargs)

    monkeypatch.setattr(runner_module, "_run_batch", failing)
    with pytest.raises(KeyboardInterrupt):
        run(model, data, tmp_path / "cut")
    assert sorted(p.name for p in (tmp_path / "cut" / "batches").iterdir()) == [
        "batch-000000.adv.safetensors",
        "batch-000000.json",
    ]
    assert not (tmp_path / "cut" / "model_info.json").exists()
    calls.clear()
    monkeypatch.setattr(runner_module, "_run_batch", lambda *a, **k: (calls.append(a[5]), real(*a, **k))[1])
    resumed = run(model, data, tmp_path / "cut")
    assert calls == [1, 2]  # batch 0 was skipped
    assert resumed["runtime"]["batches_computed_this_run"] == 2
    assert numbers(resumed) == numbers(reference)
    per_a = json.loads((tmp_path / "full" / "per_example.json").read_text())
    per_b = json.loads((tmp_path / "cut" / "per_example.json").read_text())
    assert per_a == per_b


def test_other_settings_in_same_folder_are_refused(model, data, tmp_path):
    run(model, data, tmp_path, protocol=small(attacks=("pgd-eot",), iterations=1))
    with pytest.raises(ValueError, match=r"other settings \(.*protocol\.seed"):
        run(model, data, tmp_path, protocol=small(attacks=("pgd-eot",), iterations=1, seed=3))


def test_randomness_is_keyed_by_batch(model, data, tmp_path, monkeypatch):
    """Every batch runs with batch_seed(seed, batch): global generators, defence generator and attack seeds."""
    seen = []
    real = runner_module.robust_accuracy

    def spy(clf, x, y, attacks, **kw):
        pre = clf.preprocessing_operations[0]
        seen.append((kw["seed"], pre.seed, {a.seed for a in attacks.values()}))
        return real(clf, x, y, attacks, **kw)

    monkeypatch.setattr(runner_module, "robust_accuracy", spy)
    info = run(model, data, tmp_path, protocol=small(attacks=("pgd-eot", "score-aware"), seed=4))
    assert seen == [(batch_seed(4, b), batch_seed(4, b), {batch_seed(4, b)}) for b in range(3)]
    per = json.loads((tmp_path / "per_example.json").read_text())
    assert per["batch_seeds"] == [batch_seed(4, b) for b in range(3)] and info["n_ex"] == 5


def test_defence_none_and_diffpure(model, data, tmp_path):
    none = run(model, data, tmp_path / "none", defence="none", protocol=small(attacks=("rand-aa", "bpda-eot")))
    assert none["purifier"] is None and list(none["protocol"]["skipped_attacks"]) == ["bpda-eot"]
    assert none["protocol"]["attacks"]["rand-aa"]["eot"] == 1
    dp = run(model, data, tmp_path / "dp", defence="diffpure", protocol=small(attacks=("pgd-eot", "score-aware")))
    assert list(dp["protocol"]["skipped_attacks"]) == ["score-aware"] and dp["purifier"]["reweight"] == "constant"


def test_run_validation(model, data, tmp_path):
    x, y = data
    with pytest.raises(ValueError, match="defence must be one of"):
        run(model, data, tmp_path, defence="ssni-x")
    with pytest.raises(ValueError, match=r"defence_kwargs must not set \['seed'\]"):
        run_leaderboard(
            tiny_cnn(),
            model,
            x,
            y,
            protocol=small(),
            out=tmp_path,
            nb_classes=10,
            reference=REF,
            defence_kwargs={**DEFENCE, "seed": 1},
        )
    with pytest.raises(ValueError, match=r"x must hold finite pixels in \[0, 1\]"):
        run_leaderboard(tiny_cnn(), model, x + 1, y, protocol=small(), out=tmp_path, nb_classes=10)
    with pytest.raises(ValueError, match="y must be"):
        run_leaderboard(tiny_cnn(), model, x, y[:3], protocol=small(), out=tmp_path, nb_classes=10)
    with pytest.raises(TypeError, match="protocol must be"):
        run_leaderboard(tiny_cnn(), model, x, y, protocol={"eps": 0.1}, out=tmp_path, nb_classes=10)
    before = x.copy()
    run(model, data, tmp_path / "ok", protocol=small(attacks=("pgd-eot",), iterations=1))
    np.testing.assert_array_equal(x, before)


# ---------------------------------------------------------------------------------------------------- cost
def test_cost_formula_by_hand():
    from art_ssni.leaderboard.cost import unet_evaluations

    p = AttackProtocol(eps=0.1, attacks=("pgd-eot", "rand-aa"), iterations=2, eot=3)
    # DiffPure, DDPM t* = 10: K = 10, P = 10, G = 4·3·10 = 120; PGD judged after both iterations with 8 draws;
    # evaluation: clean + 3 attack outputs, each 8 selection draws and (5 + 10 + 9) judging draws
    c = unet_evaluations(p, t_star=10, ssni=False)
    assert c == {
        "pgd-eot": 2 * 120 + 2 * 8 * 10,
        "rand-aa": 2 * (2 * 130 + 40),
        "evaluation": 4 * 32 * 10,
        "total": 2280,
    }
    # SSNI, DDIM 4 steps, T' = 5: K = min(4, 10 - 1 + 5) = 4, P = 9, G = 5 + 3·3·4 (no checkpoint) = 41
    c = unet_evaluations(
        AttackProtocol(eps=0.1, attacks=("score-aware",), iterations=1, eot=3),
        t_star=10,
        ssni=True,
        sampler="ddim",
        steps=4,
        score_steps=5,
        checkpoint=False,
    )
    # one run (the registry's score-aware attacks have no hidden PGD-EOT restart), one judging of the last
    # iterate, and the recorded levels and norms of the result (2 · 5)
    assert c["score-aware"] == (41 + 15) + 8 * 9 + 2 * 5 and c["evaluation"] == 2 * 32 * 9


def test_cost_formula_bounds_a_real_run(model, data, tmp_path):
    """The UNet rows a real run evaluates (model.nfe, checkpoint recomputation included) stay under the bound.

    (Under it here: SSNI picks t_i < t_max, backward is not in nfe.)"""
    from art_ssni.leaderboard.cost import unet_evaluations

    p = small()
    model.reset_nfe()
    run(model, data, tmp_path, protocol=p)
    bound = unet_evaluations(p, t_star=4, ssni=True, sampler="ddim", steps=2, score_steps=4)["total"] * 5
    assert 0 < model.nfe <= bound


# ---------------------------------------------------------------------------------------------------- by names (zoo)
TINY = dict(
    n_ex=4,
    protocol=AttackProtocol(eps=0.2, batch_size=4, attacks=("pgd-eot",), iterations=1, eot=1),
    sampler="ddim",
    steps=2,
    progress=False,
)


def test_leaderboard_on_the_digits_zoo(tmp_path):
    from art_ssni import zoo
    from art_ssni.leaderboard import leaderboard

    info = leaderboard(out=tmp_path, **TINY)
    models = zoo.load("digits")
    assert info["name"] == "zoo-digits-cnn + ssni-n" and info["dataset"] == "digits"
    assert info["eps"] == models.eps and info["purifier"]["t_star"] == models.t_star
    assert info["purifier"]["reference"] == models.reference.to_dict()  # the shipped statistics
    assert json.loads((tmp_path / "model_info.json").read_text())["clean_acc"] == info["clean_acc"]


def test_leaderboard_fits_the_reference_once(tmp_path):
    """With another diffusion folder the zoo's statistics do not apply: they are fitted and kept in out/."""
    from art_ssni import zoo
    from art_ssni.leaderboard import leaderboard

    models = zoo.load("digits")
    models.diffusion.save_pretrained(tmp_path / "unet")
    info = leaderboard(out=tmp_path / "out", diffusion=tmp_path / "unet", n_ref=16, score_steps=4, **TINY)
    stored = ReferenceStats.from_json(tmp_path / "out" / "reference.json")
    assert stored.count == 16 and stored.score_steps == 4
    assert info["purifier"]["reference"] == stored.to_dict()
    again = leaderboard(out=tmp_path / "out", diffusion=tmp_path / "unet", n_ref=16, score_steps=4, **TINY)
    assert again["runtime"]["batches_computed_this_run"] == 0 and numbers(again) == numbers(info)


def test_leaderboard_validation(tmp_path):
    from art_ssni.leaderboard import leaderboard

    with pytest.raises(ValueError, match="dataset must be one of"):
        leaderboard(dataset="mnist", out=tmp_path)
    with pytest.raises(ValueError, match="model must be 'zoo' for dataset 'digits'"):
        leaderboard("Standard", out=tmp_path)
    with pytest.raises(ValueError, match="diffusion: a local diffusers folder or a Hub repo id is required"):
        leaderboard("Standard", dataset="cifar10", out=tmp_path)
    with pytest.raises(ValueError, match="eps: no default for digits L2"):
        from art_ssni.leaderboard.api import default_eps

        default_eps("digits", "L2")
    with pytest.raises(TypeError, match="protocol must be an art_ssni AttackProtocol or None"):
        leaderboard(out=tmp_path, protocol={"eps": 0.1})


def test_cli_leaderboard(tmp_path, capsys):
    from art_ssni.cli import main

    args = ["leaderboard", "--n-ex", "2", "--batch-size", "2", "--attacks", "pgd-eot", "--iterations", "1"]
    args += ["--eot", "1", "--sampler", "ddim", "--steps", "2", "--defence", "diffpure", "--quiet", "--processes", "1"]
    assert main([*args, "--out", str(tmp_path), "--eps", "1/10"]) == 0
    out = capsys.readouterr().out
    info = json.loads((tmp_path / "model_info.json").read_text())
    assert info["eps"] == pytest.approx(0.1) and info["defence"] == "diffpure"
    assert "single: clean" in out and "vote: clean" in out and "wrote" in out
    assert main([*args, "--out", str(tmp_path), "--eps", "0.2"]) == 2  # other settings, same folder
    assert "other settings (" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "x"), "--defence", "nope"]) == 2
    assert "defence must be one of" in capsys.readouterr().err
