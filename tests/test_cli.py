"""The art-ssni command line: evaluate (small mode), calibrate, train-zoo, and its error paths."""

from __future__ import annotations

import json

import numpy as np
import pytest

from art_ssni import ReferenceStats
from art_ssni.cli import build_parser, main
from art_ssni.evaluation.stored import load_adversarial

SMALL = ["--n-images", "4", "--iterations", "1", "--eot", "1", "--quiet", "--steps", "2", "--seed", "3"]


def test_help_everywhere(capsys):
    for argv in (["--help"], *([cmd, "--help"] for cmd in ("evaluate", "calibrate", "train-zoo", "leaderboard"))):
        with pytest.raises(SystemExit) as err:
            main(argv)
        assert err.value.code == 0
        assert f"usage: art-ssni {' '.join(argv[:-1])}".rstrip() in capsys.readouterr().out, argv


@pytest.mark.slow
def test_evaluate_small_writes_json_and_plots(tmp_path, capsys):
    out = tmp_path / "ev"
    assert main(["evaluate", *SMALL, "--out", str(out), "--attack", "pgd-eot,score-aware"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert [d["defence"] for d in results["defences"]] == ["none", "diffpure", "ssni-n", "ssni-l"]
    assert results["settings"]["seed"] == 3 and results["settings"]["protocol"]["iterations"] == 1
    assert {"torch", "diffusers", "adversarial-robustness-toolbox"} <= set(results["versions"])
    for row in results["defences"]:
        res = row["result"]
        assert res["n"] == 4 and set(res["protocols"]) == {"single", "resubmit", "vote"}
        sources = res["per_example"]["worst_case_source"]
        assert len(sources) == 4 and set(sources) <= {"clean", "pgd-eot", "score-aware"}  # one submission each
        assert row["attacks"] == ["pgd-eot", "score-aware"]  # every row faces the same suite
        assert ("score-aware" in row["substituted"]) == (not row["defence"].startswith("ssni"))
        stored = load_adversarial(out / "adversarial" / f"{row['defence']}.safetensors", attacks=row["attacks"])
        assert stored.x.shape == (4, 1, 8, 8)
    ssni = results["defences"][2]
    assert len(ssni["t_clean"]) == 4 and len(ssni["norms_adversarial"]) == 4
    for png in ("accuracy.png", "score_norms.png", "timesteps.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = capsys.readouterr().out
    assert "worst case" in table and "ssni-l" in table and "n = 4" in table and "vote-9" in table
    assert "McNemar" in table


@pytest.mark.slow
def test_evaluate_on_gns_base(tmp_path):
    out = tmp_path / "gns"
    argv = ["evaluate", *SMALL, "--out", str(out), "--base", "gns", "--defences", "diffpure,ssni-n", "--no-plots"]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert [d["defence"] for d in results["defences"]] == ["gns", "gns+ssni-n"]
    assert results["defences"][1]["settings"]["base"] == {"name": "gns", "stages": [30, 30, 30, 30, 50, 50, 125, 125]}


@pytest.mark.slow
def test_evaluate_replaces_an_attack_the_base_cannot_take_by_a_pgd_eot_restart(tmp_path, capsys):
    out = tmp_path / "gns-st"
    argv = ["evaluate", *SMALL, "--out", str(out), "--base", "gns", "--defences", "ssni-n", "--no-plots"]
    argv = [a for a in argv if a != "--quiet"]
    assert main([*argv, "--attack", "pgd-eot,score-aware-st"]) == 0
    row = json.loads((out / "results.json").read_text())["defences"][0]
    assert row["attacks"] == ["pgd-eot", "score-aware-st"] and "single-stage" in row["substituted"]["score-aware-st"]
    assert "score-aware-st: pgd-eot restart (seed " in capsys.readouterr().err


def test_calibrate_writes_reference(tmp_path):
    images = np.random.default_rng(0).random((12, 1, 8, 8), dtype=np.float32)
    np.save(tmp_path / "x.npy", images)
    out = tmp_path / "ref.json"
    assert main(["calibrate", "--images", str(tmp_path / "x.npy"), "--score-steps", "3", "--out", str(out)]) == 0
    ref = ReferenceStats.from_json(out)
    assert ref.count == 12 and ref.score_steps == 3


def test_train_zoo_few_steps(tmp_path):
    out = tmp_path / "zoo"
    argv = [
        "train-zoo",
        "--out",
        str(out),
        "--unet-steps",
        "2",
        "--classifier-epochs",
        "1",
        "--eval-size",
        "4",
        "--quiet",
    ]
    assert main(argv) == 0
    assert (out / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert (out / "reference.json").is_file() and (out / "metrics.json").is_file()


@pytest.mark.parametrize(
    "argv,message",
    [
        (["evaluate", "--defences", "diffpure,ssni-x", "--n-images", "2"], "defences must be among"),
        (["evaluate", "--attack", "fgsm", "--n-images", "2"], "attacks must be among"),
        (["evaluate", "--diffusion", "/nonexistent/dm", "--n-images", "2"], "does not exist"),
        (["evaluate", "--data", "/nonexistent/data.npz", "--n-images", "2"], "file not found"),
        (["evaluate", "--classifier", "no_colon", "--n-images", "2"], "MODULE:FACTORY"),
        (["evaluate", "--zoo", "mnist"], "name must be one of"),
        (["calibrate", "--images", "/nonexistent/x.npy"], "file not found"),
    ],
)
def test_errors_are_one_line_with_status_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]


def test_unwritable_out_fails_before_work(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["evaluate", "--out", str(blocker / "sub")]) == 2
    assert "not writable" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["evaluate", "--n-images", "0"], ["evaluate", "--eps", "-1"], ["nope"]])
def test_bad_arguments_exit_2(argv):
    with pytest.raises(SystemExit) as err:
        build_parser().parse_args(argv)
    assert err.value.code == 2


def test_subcommands_agree_on_spelling_and_print_list_defaults_readably(capsys):
    parser = build_parser()
    for command in ("evaluate", "leaderboard"):
        args = parser.parse_args(
            [command, "--eps", "8/255", "--gradient", "bpda", "--n-images", "3", "--attacks", "pgd-eot"]
        )
        assert args.eps == pytest.approx(8 / 255) and args.gradient == "bpda" and args.n_images == 3
        assert args.attacks == ["pgd-eot"] and args.device == "cpu" and args.votes == 9
    assert parser.parse_args(["evaluate", "--attack", "bpda-eot"]).attacks == ["bpda-eot"]  # the old spelling
    with pytest.raises(SystemExit):
        parser.parse_args(["evaluate", "--votes", "4"])  # vote-K needs an odd K
    for command in ("evaluate", "leaderboard"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
    text = capsys.readouterr().out
    assert "none,diffpure,ssni-n,ssni-l" in text and "['" not in text
    assert "score-aware-st" in text  # choices come from the attack registry


def test_nothing_is_created_before_the_arguments_are_checked(tmp_path, capsys):
    out = tmp_path / "new" / "folder"
    assert main(["evaluate", "--attacks", "fgsm", "--out", str(out)]) == 2
    assert main(["evaluate", "--classifier", "no_colon", "--out", str(out)]) == 2
    assert not (tmp_path / "new").exists()
    assert "attacks must be among" in capsys.readouterr().err


def test_list_argument_types_shared_by_every_sub_command():
    import argparse

    from art_ssni.cli_args import csv_names_or_none, csv_positive_floats_or_none, csv_positive_ints

    assert csv_positive_ints("50, 100") == [50, 100]
    assert csv_positive_floats_or_none("0.5,1,2") == [0.5, 1.0, 2.0] and csv_positive_floats_or_none("none") == []
    assert csv_names_or_none("gns,gns+ssni-n") == ["gns", "gns+ssni-n"] and csv_names_or_none("None") == []
    for parse, bad, message in (
        (csv_positive_ints, "100,0", "expected an integer >= 1, got 0"),
        (csv_positive_ints, "100,x", "expected an integer, got 'x'"),
        (csv_positive_floats_or_none, "1,-2", "expected a number > 0, got -2"),
        (csv_positive_floats_or_none, "1,inf", "expected a finite number, got 'inf'"),
    ):
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            parse(bad)
