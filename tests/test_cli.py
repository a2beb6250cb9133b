"""The art-ssni command line: evaluate (small mode), calibrate, train-zoo, and its error paths."""

from __future__ import annotations

import json

import numpy as np
import pytest

from art_ssni import ReferenceStats
from art_ssni.cli import build_parser, main

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
    assert results["settings"]["seed"] == 3 and results["settings"]["attack"]["max_iter"] == 1
    assert {"torch", "diffusers", "adversarial-robustness-toolbox"} <= set(results["versions"])
    for row in results["defences"]:
        res = row["result"]
        assert res["n"] == 4 and len(res["worst_case_correct"]) == 4
        assert res["worst_case_accuracy"] == sum(res["worst_case_correct"]) / 4  # the stored verdicts add up
        assert "pgd-eot" in row["attacks"]
        assert ("score-aware" in row["attacks"]) == row["defence"].startswith("ssni")
    ssni = results["defences"][2]
    assert len(ssni["t_clean"]) == 4 and len(ssni["norms_adversarial"]) == 4
    for png in ("accuracy.png", "score_norms.png", "timesteps.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = capsys.readouterr().out
    assert "worst case" in table and "ssni-l" in table


@pytest.mark.slow
def test_evaluate_on_gns_base(tmp_path):
    out = tmp_path / "gns"
    argv = ["evaluate", *SMALL, "--out", str(out), "--base", "gns", "--defences", "diffpure,ssni-n", "--no-plots"]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert [d["defence"] for d in results["defences"]] == ["gns", "gns+ssni-n"]
    assert results["defences"][1]["settings"]["base"] == "gns"


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
        (["evaluate", "--attack", "fgsm", "--n-images", "2"], "attack must be among"),
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
