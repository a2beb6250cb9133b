"""The art-ssni command line: evaluate (small mode), calibrate, train-zoo, and its error paths."""

from __future__ import annotations

import json

import numpy as np
import pytest

from art_ssni import ReferenceStats
from art_ssni.cli import build_parser, main
from art_ssni.evaluation.stats import wilson_interval
from art_ssni.evaluation.stored import load_adversarial

SMALL = [
    "--processes",
    "1",
    "--n-images",
    "4",
    "--iterations",
    "1",
    "--eot",
    "1",
    "--quiet",
    "--steps",
    "2",
    "--seed",
    "3",
]


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
        record = res["protocols"]["vote"]["worst_case"]
        k = sum(res["per_example"]["vote"]["worst_case"])
        assert record["n"] == 4 and record["accuracy"] == k / 4  # the record counts the per-example verdicts
        assert record["ci95"] == pytest.approx(list(wilson_interval(k, 4)))
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


def test_train_zoo_few_steps(tmp_path, capsys):
    import torch

    from art_ssni import zoo

    out = tmp_path / "zoo"
    argv = ["train-zoo", "--out", str(out), "--unet-steps", "2", "--classifier-epochs", "1", "--eval-size", "4"]
    assert main([*argv, "--quiet", "--seed", "3"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert json.loads(capsys.readouterr().out) == metrics  # what it prints is what it wrote
    assert metrics["seed"] == 3 and metrics["unet_steps"] == 2 and metrics["classifier_epochs"] == 1
    config = json.loads((out / "zoo.json").read_text())
    assert config["split"]["random_state"] == 3 and config["split"]["n_train"] + config["split"]["n_test"] == 1797
    trained = zoo.load("digits", path=out)  # the folder is a zoo: it loads, with the training split's reference
    assert trained.reference == ReferenceStats.from_dict(metrics["reference"])
    assert (
        trained.reference.count == config["split"]["n_train"] and trained.reference.score_steps == config["score_steps"]
    )
    assert trained.t_star == config["t_star"] == metrics["t_star"]
    shipped = zoo.load("digits")
    weights = dict(trained.diffusion.unet.named_parameters())
    assert any(not torch.equal(p, weights[n]) for n, p in shipped.diffusion.unet.named_parameters())  # trained anew
    logits = trained.classifier(torch.as_tensor(trained.x_test[:4]))
    assert logits.shape == (4, 10) and torch.isfinite(logits).all()


@pytest.mark.parametrize(
    "argv,message",
    [
        (["evaluate", "--defences", "diffpure,ssni-x", "--n-images", "2"], "defences must be among"),
        (["evaluate", "--attack", "fgsm", "--n-images", "2"], "attacks must be distinct names among"),
        (["evaluate", "--diffusion", "/nonexistent/dm", "--n-images", "2"], "does not exist"),
        (["evaluate", "--data", "/nonexistent/data.npz", "--n-images", "2"], "file not found"),
        (["evaluate", "--classifier", "no_colon", "--n-images", "2"], "MODULE:FACTORY"),
        (["evaluate", "--classifier", "os:system", "--n-images", "2"], "'os' is a standard-library module"),
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


@pytest.mark.parametrize(
    "argv,message",
    [
        (["evaluate", "--n-images", "0"], "argument --n-images/--n-ex: expected an integer >= 1, got 0"),
        (["evaluate", "--eps", "-1"], "argument --eps: expected a number > 0 or a fraction such as 8/255, got '-1'"),
        (["nope"], "argument COMMAND: invalid choice: 'nope'"),
        (["evaluate", "--eta", "2"], "argument --eta: expected a number in [0, 1], got 2"),
        (["evaluate", "--bias", "-1"], "argument --bias: expected a number >= 0, got -1"),
        (["evaluate", "--zoo", "foo"], "argument --zoo: invalid choice: 'foo' (choose from digits)"),
        (["calibrate", "--zoo", "foo"], "argument --zoo: invalid choice: 'foo'"),
        (["evaluate", "--norm", "1"], "argument --norm/--threat: expected inf (Linf) or 2 (L2), got '1'"),
        (["leaderboard", "--defences", "diffpure,ssni-n"], "argument --defences/--defence: expected one name (one "
         "entry per run), got 2: 'diffpure,ssni-n'"),
    ],
)  # fmt: skip
def test_bad_arguments_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as err:
        build_parser().parse_args(argv)
    assert err.value.code == 2
    error = capsys.readouterr().err
    assert message.replace("(choose from digits)", "") in error, error


@pytest.mark.parametrize(
    "argv,message",
    [
        (["evaluate", "--t-star", "5000"], "--t-star 5000: must be in [1, 999] for this diffusion model (1000 "
         "timesteps)"),
        (["evaluate", "--eps", "5"], "--eps 5: larger than the pixel range [0, 1] allows (1: an ℓ∞ radius of 1 "
         "already allows any image)"),
        (["evaluate", "--eps", "9", "--norm", "2"], "--eps 9: larger than the pixel range [0, 1] allows (8: the "
         "largest ℓ2 distance between two images of shape (1, 8, 8) in [0, 1])"),
        (["evaluate", "--n-images", "100000"], "--n-images 100000: the digits zoo's data hold only 450 test images; "
         "pass --n-images 450"),
        (["leaderboard", "--t-star", "1000"], "--t-star 1000: must be in [1, 999]"),
        (["leaderboard", "--eps", "2"], "--eps 2: larger than the pixel range [0, 1] allows"),
        (["leaderboard", "--n-images", "451"], "--n-images 451: the digits zoo's data hold only 450 test images"),
        (["frontier", "--t-stars", "100,5000"], "--t-stars 5000: must be in [1, 999]"),
        (["frontier", "--t-star", "1000"], "--t-stars 1000: must be in [1, 999]"),
        (["frontier", "--eps", "1.5"], "--eps 1.5: larger than the pixel range [0, 1] allows"),
        (["frontier", "--n-images", "100000"], "--n-images 100000: the digits zoo's data hold only 450 test images"),
    ],
)  # fmt: skip
def test_what_a_run_would_fail_on_is_refused_before_any_defence_runs(argv, message, tmp_path, capsys, monkeypatch):
    from art_ssni.evaluation import compare

    def never(*args, **kwargs):
        raise AssertionError("a defence was built")

    monkeypatch.setattr(compare, "defended_classifier", never)
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


@pytest.mark.parametrize("command", ["evaluate", "calibrate", "train-zoo", "leaderboard", "frontier"])
def test_unwritable_out_is_refused_in_every_subcommand(command, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = blocker / "sub" / ("r.json" if command == "calibrate" else "out")
    assert main([command, "--out", str(out), "--quiet"]) == 2
    assert f"--out {out if command != 'calibrate' else out.parent}: not writable" in capsys.readouterr().err


def test_render_to_an_unwritable_page_is_refused(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    page = blocker / "lb.md"
    assert main(["leaderboard", "--render", str(tmp_path), "--page", str(page)]) == 2
    assert f"--out {blocker}: not writable" in capsys.readouterr().err


def test_one_spelling_per_flag_in_every_subcommand():
    parser = build_parser()
    for command in ("evaluate", "leaderboard", "frontier"):
        for flag in ("--attacks", "--attack"):
            assert parser.parse_args([command, flag, "pgd-eot"]).attacks == ["pgd-eot"], (command, flag)
        assert parser.parse_args([command, "--gradient", "bpda"]).gradient == "bpda"
    for command in ("evaluate", "leaderboard"):
        for flag, value, norm in (("--norm", "inf", "Linf"), ("--norm", "L2", "L2"), ("--threat", "2", "L2")):
            assert parser.parse_args([command, flag, value]).norm == norm
    assert parser.parse_args(["leaderboard", "--defences", "gns"]).defence == "gns"
    assert parser.parse_args(["leaderboard", "--defence", "gns"]).defence == "gns"
    assert parser.parse_args(["frontier", "--t-star", "150"]).t_stars == [150]
    assert parser.parse_args(["frontier", "--t-stars", "50,150"]).t_stars == [50, 150]
    assert parser.parse_args(["frontier"]).t_stars == [50, 100, 150, 200]
    for command in ("leaderboard", "frontier", "calibrate"):
        assert parser.parse_args([command, "--batch-size", "7"]).batch_size == 7
    for command in ("leaderboard", "frontier"):
        assert parser.parse_args([command, "--surrogate-steps", "4"]).surrogate_steps == 4


def test_help_texts_show_defaults_and_lists_and_no_double_percent(capsys):
    for command in ("evaluate", "calibrate", "train-zoo", "leaderboard", "frontier"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert "%%" not in text and "['" not in text and "==SUPPRESS==" not in text, command
        if command == "calibrate":
            assert "reference statistics of their score norms" in text  # a description
    with pytest.raises(SystemExit):
        main(["frontier", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 50,100,150,200)" in text and "(default: diffpure,ssni-n,ssni-l)" in text
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    assert "(default: the zoo's ℓ∞ radius)" in " ".join(capsys.readouterr().out.split())


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
    assert "attacks must be distinct names among" in capsys.readouterr().err


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


# ------------------------------------------------------------------ progress without a terminal
class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_progress_lines_without_a_terminal():
    import io

    from tqdm import tqdm

    from art_ssni.cli_args import LogProgress

    sink, clock = io.StringIO(), _Clock()
    log = LogProgress(sink, every=10.0, seconds=60.0, clock=clock)
    log.write("a plain message\n")
    bar = tqdm(total=100, desc="SSNI purification", file=log, disable=None, mininterval=0, miniters=1)
    for _ in range(100):  # 100 redraws: a line at 0 %, every 10 % and at the end
        bar.update(1)
    clock.now = 1000.0
    bar.close()
    lines = sink.getvalue().splitlines()
    assert lines[0] == "a plain message"
    bars = lines[1:]
    percents = [int(line.split("%")[0].split()[-1]) for line in bars]
    assert all(line.startswith("SSNI purification:") for line in bars)
    assert percents == [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 100], bars  # the last: the closed bar
    assert "<" in bars[5] and "[" in bars[5]  # elapsed < remaining
    assert "\r" not in sink.getvalue() and "\x1b" not in sink.getvalue()


def test_progress_lines_every_few_minutes_of_a_slow_bar():
    import io

    from tqdm import tqdm

    from art_ssni.cli_args import LogProgress

    sink, clock = io.StringIO(), _Clock()
    log = LogProgress(sink, every=10.0, seconds=60.0, clock=clock)
    bar = tqdm(total=1000, desc="attack", file=log, disable=None, mininterval=0, miniters=1)
    for step in range(30):  # 3 % in all: no 10 % step, but a line every 60 s
        clock.now = 30.0 * (step + 1)
        bar.update(1)
    assert len(sink.getvalue().splitlines()) == 1 + 15  # the first redraw, then one per 60 s
    bar.close()


def test_cli_installs_the_progress_stream_only_without_a_terminal(monkeypatch, tmp_path):
    import sys

    import art_ssni.cli as cli
    from art_ssni.cli_args import LogProgress

    seen = []
    monkeypatch.setattr(cli, "_cmd_calibrate", lambda args: seen.append(type(sys.stderr)) or 0)
    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["calibrate"].set_defaults(func=cli._cmd_calibrate)
    assert main(["calibrate", "--out", str(tmp_path / "r.json")]) == 0
    assert main(["calibrate", "--out", str(tmp_path / "r.json"), "--quiet"]) == 0
    assert seen[0] is LogProgress and seen[1] is not LogProgress and not isinstance(sys.stderr, LogProgress)


@pytest.mark.parametrize("command", ["leaderboard", "frontier"])
def test_sharded_by_default_over_every_core_and_not_under_torchrun(command, tmp_path, monkeypatch):
    """Issue 26 item 1: leaderboard and frontier start one process per core (torch.distributed.run) unless --processes 1
    or already under torchrun; the arguments are checked once, before any process starts."""
    import art_ssni.cli_args as cli_args

    started = []
    monkeypatch.setattr(cli_args, "run_sharded", lambda argv, n: started.append((list(argv), n)) or 0)
    monkeypatch.setattr("art_ssni.cli.run_sharded", cli_args.run_sharded, raising=False)
    monkeypatch.setattr(cli_args.os, "cpu_count", lambda: 3)
    monkeypatch.delenv("RANK", raising=False)
    argv = [command, "--out", str(tmp_path / "out"), "--quiet"]
    assert main(argv) == 0
    assert started == [(argv, 3)]
    assert main([*argv[:1], "--eps", "5", *argv[1:]]) == 2 and len(started) == 1  # refused before any process
    assert main([*argv, "--processes", "2"]) == 0 and started[-1] == ([*argv, "--processes", "2"], 2)
    parser = build_parser()
    assert cli_args.shard_count(parser.parse_args([*argv, "--processes", "1"])) == 1
    monkeypatch.setenv("RANK", "0")
    assert cli_args.shard_count(parser.parse_args(argv)) == 1  # under torchrun: this process is one shard


def test_evaluate_shards_over_its_defences_by_default(tmp_path, monkeypatch):
    """Issue 26 item 1: evaluate starts one process per defence other than 'none', up to every core, unless
    --processes 1 or already under torchrun; its arguments are checked once, before any process starts."""
    import art_ssni.cli_args as cli_args

    started = []
    monkeypatch.setattr("art_ssni.cli.run_sharded", lambda argv, n: started.append((list(argv), n)) or 0)
    monkeypatch.setattr(cli_args.os, "cpu_count", lambda: 8)
    monkeypatch.delenv("RANK", raising=False)
    argv = ["evaluate", "--out", str(tmp_path / "out"), "--quiet"]
    assert main(argv) == 0 and started == [(argv, 3)]  # none, diffpure, ssni-n, ssni-l: three defences to share
    assert cli_args.shard_count(build_parser().parse_args(argv), most=1) == 1  # one defence: one process
    assert main([*argv, "--defences", "diffpure,ssni-x"]) == 2 and len(started) == 1  # refused before any process
    assert main([*argv, "--eps", "5"]) == 2 and len(started) == 1
    monkeypatch.setattr(cli_args.os, "cpu_count", lambda: 2)
    assert main(argv) == 0 and started[-1] == (argv, 2)
