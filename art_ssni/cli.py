"""The ``art-ssni`` command line (layer 8): parse, call the library, print, plot. No logic of its own.

Sub-commands: ``evaluate`` (:func:`art_ssni.evaluation.evaluate`: compare defences under adaptive attacks),
``calibrate`` (fit reference statistics), ``train-zoo`` (retrain the shipped digits models), ``leaderboard``
(:func:`art_ssni.leaderboard.leaderboard`: a fixed protocol, resumable, torchrun-sharded). Option names, choices and
defaults agree across sub-commands and come from the registries. ``art-ssni <command> --help`` documents them.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from art_ssni.cli_args import (
    ATTACK_WEIGHT_OPTIONS,
    EVALUATE_NPROC_OPTION,
    NPROC_OPTION,
    PROTOCOL_OPTIONS,
    CLIError,
    LogProgress,
    Spec,
    add_options,
    check_eps,
    check_n_images,
    check_t_star,
    check_writable,
    csv_names,
    load_array_file,
    load_factory,
    nonnegative_float,
    odd_int,
    one_name,
    positive_float,
    positive_int,
    run_sharded,
    shard_count,
    threat_model,
    unit_float,
)
from art_ssni.cli_frontier import add_frontier_parser, add_render_arguments, render_command

__all__ = ["build_parser", "main"]


def _common() -> argparse.ArgumentParser:
    """Options every sub-command has, with one spelling and one default (a parent parser)."""
    common = argparse.ArgumentParser(add_help=False)
    add_options(common, [
        (("--seed",), dict(type=int, default=0, help="seed of every random draw")),
        (("--device",), dict(choices=["cpu", "cuda"], default="cpu", help="torch device")),
        (("--quiet",), dict(action="store_true", help="no progress bars or messages")),
    ])  # fmt: skip
    return common


def _attack_spec(*, attacks: str, iterations: int | None, eot: int, eps: str) -> Spec:
    """Options of the attacks and the protocols, shared by evaluate and leaderboard (their defaults differ)."""
    from art_ssni.attacks.registry import ATTACKS
    from art_ssni.evaluation.run import DEFENCE_DEFAULTS

    it = "the standard protocol: APGD 100, PGD 200" if iterations is None else None
    return [
        (("--attacks", "--attack"), dict(dest="attacks", type=csv_names, default=attacks,
          help=f"comma-separated among {', '.join(ATTACKS)}; one a defence cannot take is replaced by a PGD-EOT "
               "restart (every defence faces the same suite)")),
        (("--eps",), dict(type=positive_float, default=None,
          help=f"attack radius in pixel units of [0, 1], e.g. 0.2 or 8/255 (default: {eps})")),
        (("--norm", "--threat"), dict(dest="norm", type=threat_model, default="Linf",
          help="threat model: inf (Linf) or 2 (L2)")),
        (("--eps-step",), dict(type=positive_float, default=None,
          help="PGD step (default: eps * max(0.223, 2.5 / iterations), the one rule for every attack)")),
        (("--iterations",), dict(type=positive_int, default=iterations,
          help="attack iterations" + (f" (default: {it})" if it else ""))),
        (("--eot",), dict(type=positive_int, default=eot, help="purifications per gradient")),
        (("--votes",), dict(type=odd_int, default=9, help="K of the vote-K protocol, odd")),
        (("--redraws",), dict(type=positive_int, default=5, help="re-judgings of the single protocol")),
        (("--resubmit",), dict(type=positive_int, default=10, help="N of the resubmit-N protocol")),
        (("--select-draws",), dict(type=positive_int, default=8,
          help="the attacker's own draws judging iterates and picking its one submission per sample")),
        *ATTACK_WEIGHT_OPTIONS,
        (("--t-star",), dict(type=positive_int, default=None, help="base noise level t* (default: the preset's)")),
        (("--sampler",), dict(choices=["ddpm", "ddim"], default=DEFENCE_DEFAULTS["sampler"],
          help="reverse sampler of the defence; ddim keeps CPU runs short, the paper's defence runs ddpm")),
        (("--steps",), dict(type=positive_int, default=DEFENCE_DEFAULTS["steps"],
          help="DDIM steps (ignored with ddpm)")),
        (("--gradient",), dict(choices=["exact", "surrogate", "bpda"], default="exact",
          help="attack gradient through the purifier")),
        (("--diffusion",), dict(default=None,
          help="a diffusers folder or Hub repo id (e.g. google/ddpm-cifar10-32) instead of the zoo's")),
        (("--reference",), dict(type=Path, default=None, help="reference stats JSON (art-ssni calibrate)")),
    ]  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    from art_ssni._version import __version__
    from art_ssni.attacks.protocol import BUDGETS
    from art_ssni.evaluation.run import DEFAULTS
    from art_ssni.zoo import available

    zoo_names = available()

    parser = argparse.ArgumentParser(
        prog="art-ssni", description="Sample-Specific Noise Injection diffusion purification for ART."
    )
    parser.add_argument("--version", action="version", version=f"art-ssni {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = [_common()]

    ev = sub.add_parser(
        "evaluate",
        parents=common,
        help="compare no defence, DiffPure, SSNI-N and SSNI-L under adaptive attacks",
        description="Worst case (the attacker's one submission per sample among the clean input and every "
        "attack's output) of each defence under three deployment protocols "
        "(single, resubmit-N, vote-K; docs/evaluation-guide.md), with 95 % Wilson intervals and McNemar p-values. "
        "Defaults to the shipped digits zoo; writes results.json and PNG plots.",
    )
    add_options(ev, [
        (("--defences",), dict(type=csv_names, default=",".join(DEFAULTS["defences"]),
          help="comma-separated: 'none' and/or registered defence names")),
        *_attack_spec(attacks=",".join(DEFAULTS["attacks"]), iterations=BUDGETS["evaluate"]["iterations"],
                      eot=BUDGETS["evaluate"]["eot"], eps="the zoo's ℓ∞ radius"),
        (("--n-images", "--n-ex"), dict(dest="n_images", type=positive_int, default=DEFAULTS["n_images"],
          help="first N test images")),
        (("--tau",), dict(type=positive_float, default=None, help="SSNI-N temperature (default: reference std)")),
        (("--bias",), dict(type=nonnegative_float, default=5.0, help="reweighting bias b >= 0")),
        (("--eta",), dict(type=unit_float, default=1.0, help="DDIM eta in [0, 1]")),
        (("--base",), dict(choices=["diffpure", "gns", "gdmp"], default="diffpure",
          help="base method: diffpure / ssni-n / ssni-l in --defences become the base and its SSNI variants")),
        (("--checkpoint",), dict(action="store_true", help="checkpoint every reverse step (bounded memory)")),
        (("--surrogate-steps",), dict(type=positive_int, default=10,
          help="DDIM steps of the surrogate of --gradient surrogate (default: 10)")),
        (("--batch-size",), dict(type=positive_int, default=32, help="examples per attack batch (default: 32)")),
        (("--out",), dict(type=Path, default=Path("results/evaluate"), help="output folder")),
        (("--zoo",), dict(choices=zoo_names, default="digits", help="zoo entry giving the default models and data")),
        (("--classifier",), dict(default=None, metavar="MODULE:FACTORY",
          help="imports MODULE and calls FACTORY() for your torch classifier (needs --nb-classes): this RUNS that "
          "code, name only modules you trust")),
        (("--nb-classes",), dict(type=positive_int, default=None, help="classes of --classifier")),
        (("--data",), dict(type=Path, default=None,
          help=".npz: x_test, y_test (NCHW in [0, 1]), optionally x_train to calibrate on")),
        (("--no-plots",), dict(action="store_true", help="skip the PNG plots")),
        EVALUATE_NPROC_OPTION,
    ])  # fmt: skip
    ev.set_defaults(func=_cmd_evaluate)

    cal = sub.add_parser(
        "calibrate",
        parents=common,
        help="fit reference score-norm statistics, write them as JSON",
        description="Score clean images with the diffusion model (T' = --score-steps timesteps) and write the "
        "reference statistics of their score norms (mean, std, min, max, quantiles) that SSNI-N / SSNI-L reweight "
        "with; pass the file to evaluate or leaderboard as --reference. Defaults to the zoo's training images.",
    )
    add_options(cal, [
        (("--images",), dict(type=Path, default=None,
          help=".npy (N, C, H, W) or .npz (x or x_train), clean, in [0, 1] (default: zoo train)")),
        (("--diffusion",), dict(default=None, help="a diffusers folder or Hub repo id (default: the zoo's)")),
        (("--zoo",), dict(choices=zoo_names, default="digits", help="zoo entry for the defaults")),
        (("--score-steps",), dict(type=positive_int, default=20, help="T'")),
        (("--batch-size",), dict(type=positive_int, default=256, help="images per batch")),
        (("--out",), dict(type=Path, default=Path("reference.json"), help="output JSON")),
    ])  # fmt: skip
    cal.set_defaults(func=_cmd_calibrate)

    tr = sub.add_parser("train-zoo", parents=common, help="retrain the shipped digits models")
    add_options(tr, [
        (("--out",), dict(type=Path, default=Path("zoo-digits"), help="output folder")),
        (("--unet-steps",), dict(type=positive_int, default=3000, help="UNet training steps")),
        (("--classifier-epochs",), dict(type=positive_int, default=40, help="CNN epochs")),
        (("--eval-size",), dict(type=positive_int, default=None, help="evaluate on this many test images")),
    ])  # fmt: skip
    tr.set_defaults(func=_cmd_train_zoo)

    lb = sub.add_parser(
        "leaderboard",
        parents=common,
        help="RobustBench-style entry: a classifier behind a defence under a fixed protocol (resumable, torchrun)",
        description="A randomized defence under a fixed protocol (AutoAttack rand, PGD-EOT, ...): worst case under "
        "three deployment protocols with intervals, fixed seeds. Resumes from --out; shard with torchrun "
        "--nproc_per_node=N. Writes OUT/model_info.json. See docs/robustbench.md.",
    )
    add_options(lb, [
        (("--model",), dict(default="zoo", help="RobustBench model name (cifar10) or 'zoo' (digits)")),
        (("--dataset",), dict(choices=["digits", "cifar10"], default="digits", help="data set")),
        (("--n-images", "--n-ex"), dict(dest="n_images", type=positive_int, default=None,
          help="first N examples (default: 512, or the whole test set when it is smaller, as on digits)")),
        (("--defences", "--defence"), dict(dest="defence", type=one_name, default="ssni-n",
          help="'none' or one registered defence name (one per leaderboard entry)")),
        *_attack_spec(attacks="rand-aa,pgd-eot", iterations=None, eot=20,
                      eps="the zoo's for digits ℓ∞, 8/255 for CIFAR-10 ℓ∞, 0.5 for ℓ2"),
        (("--data-dir",), dict(type=Path, default=None, help="CIFAR-10 folder (python/binary batches) or .npz")),
        (("--model-dir",), dict(type=Path, default=Path("models"), help="RobustBench models")),
        (("--n-ref",), dict(type=positive_int, default=5000, help="training images to fit the reference on")),
        (("--out",), dict(type=Path, default=Path("results/leaderboard"), help="output folder")),
        NPROC_OPTION,
        (("--batch-size",), dict(type=positive_int, default=32, help="examples per batch")),
        (("--surrogate-steps",), dict(type=positive_int, default=None, help="DDIM steps of the surrogate")),
    ])  # fmt: skip
    add_render_arguments(lb)
    lb.set_defaults(func=_cmd_leaderboard)
    add_frontier_parser(sub, common)

    rj = sub.add_parser(
        "rejudge",
        help="re-judge a stored evaluate run under other judging settings, without re-attacking",
        description="Reads RUN_DIR/results.json and the adversarial examples stored in RUN_DIR/adversarial/ by "
        "art-ssni evaluate, rebuilds each defence from the recorded settings and runs only the judging step (the "
        "attacker's pick and the protocols' fresh verdicts); rewrites RUN_DIR/results.json. With no option it "
        "reproduces the recorded verdicts.",
    )
    rj.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="the --out folder of art-ssni evaluate")
    rj.add_argument("--votes", type=odd_int, default=None, help="K of the vote-K protocol (default: as recorded)")
    rj.add_argument("--redraws", type=positive_int, default=None, help="re-judgings of single (default: recorded)")
    rj.add_argument("--resubmit", type=positive_int, default=None, help="N of resubmit-N (default: recorded)")
    rj.add_argument("--select-draws", type=positive_int, default=None, help="attacker's draws (default: recorded)")
    rj.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="torch device (default: %(default)s)")
    rj.set_defaults(func=_cmd_rejudge)
    return parser


# ---------------------------------------------------------------------------------------------------- commands
def _cmd_evaluate(args: argparse.Namespace) -> int:
    import numpy as np

    from art_ssni import plots, zoo
    from art_ssni._common import write_json_atomic
    from art_ssni.diffusion.model import DiffusionModel
    from art_ssni.evaluation.report import settings_line, worst_case_table
    from art_ssni.evaluation.run import DEFENCE_DEFAULTS, default_protocol, defence_names, evaluate
    from art_ssni.leaderboard.distributed import world
    from art_ssni.ssni.reference import ReferenceStats

    check_writable(args.out)
    data: dict[str, Any] = {}
    if args.data is not None:
        data["x"] = np.asarray(load_array_file(args.data, ["x_test", "x"]), dtype=np.float32)
        data["y"] = np.asarray(load_array_file(args.data, ["y_test", "y"]), dtype=np.int64)
        with np.load(args.data, allow_pickle=False) as npz:
            data["x_train"] = np.asarray(npz["x_train"], dtype=np.float32) if "x_train" in npz else None
    if args.classifier is not None:
        data["classifier"] = load_factory(args.classifier).to(args.device).eval()
        data["nb_classes"] = args.nb_classes
    reference = ReferenceStats.from_json(args.reference) if args.reference is not None else None
    models = zoo.load(args.zoo, device=args.device)
    diffusion = DiffusionModel.from_pretrained(args.diffusion).to(args.device) if args.diffusion else None
    x = data.get("x", models.x_test)  # everything the run would fail on later, refused before any defence runs
    check_n_images(args.n_images, x.shape[0], f"--data {args.data}" if args.data else f"the {args.zoo} zoo's data")
    check_eps(args.eps, args.norm, x.shape[1:])
    check_t_star(args.t_star, (diffusion or models.diffusion).num_timesteps)
    protocol = default_protocol(
        args.eps if args.eps is not None else float(models.eps),
        threat_model=args.norm,
        verbose=not args.quiet,
        batch_size=args.batch_size,
        **{k: getattr(args, k) for k in PROTOCOL_OPTIONS},
    )
    names = defence_names(args.defences, args.base)
    nproc = shard_count(args, most=sum(d != "none" for d in names))
    if nproc > 1:  # one process per defence, up to every core; the arguments were checked above, once
        return run_sharded(getattr(args, "argv", None) or sys.argv[1:], nproc)
    with world(args.device) as w:  # a world of one unless started by run_sharded (torchrun)
        results = evaluate(
            models,
            protocol=protocol,
            **{k: getattr(args, k) for k in ("defences", "base", "n_images", "t_star", "device")},
            defence_kwargs={k: getattr(args, k) for k in DEFENCE_DEFAULTS},
            diffusion=diffusion,
            reference=reference,
            out=args.out,
            progress=None if args.quiet else (lambda msg: print(msg, file=sys.stderr)),
            world=w,
            **data,
        )
        if w.rank != 0:  # every rank holds the whole result; rank 0 prints and writes it
            return 0
    print(settings_line(results))
    print(worst_case_table(results))
    write_json_atomic(args.out / "results.json", results, indent=2)
    if not args.no_plots:
        plots.evaluate_plots(results, args.out)
    print(f"wrote {args.out / 'results.json'}")
    return 0


def _cmd_rejudge(args: argparse.Namespace) -> int:
    from art_ssni.evaluation.report import settings_line, worst_case_table
    from art_ssni.leaderboard.rejudge import JUDGING, rejudge

    results = rejudge(args.run_dir, device=args.device, **{k: getattr(args, k) for k in JUDGING})
    print(settings_line(results))
    print(worst_case_table(results))
    print(f"rewrote {args.run_dir / 'results.json'}")
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    import numpy as np

    from art_ssni import zoo
    from art_ssni._common import art_device_type
    from art_ssni.diffusion.model import DiffusionModel
    from art_ssni.preprocessor import SSNIPreprocessor

    if args.out.is_dir():
        raise CLIError(f"--out {args.out}: is a folder; give the JSON file to write")
    check_writable(args.out.parent)  # before scoring thousands of images
    if args.images is None or args.diffusion is None:
        models = zoo.load(args.zoo, device=args.device)
    images = models.x_train if args.images is None else load_array_file(args.images, ["x", "x_train"])
    diffusion = models.diffusion if args.diffusion is None else DiffusionModel.from_pretrained(args.diffusion)
    pre = SSNIPreprocessor(
        diffusion,
        score_steps=args.score_steps,
        batch_size=args.batch_size,
        seed=args.seed,
        device_type=art_device_type(args.device),
    )
    reference = pre.fit(np.asarray(images)).reference
    assert reference is not None
    reference.to_json(args.out)
    print(
        f"{reference.count} images: mean {reference.mean:.4g}, std {reference.std:.4g}, "
        f"min {reference.min:.4g}, max {reference.max:.4g} -> {args.out}"
    )
    return 0


def _cmd_train_zoo(args: argparse.Namespace) -> int:
    import json

    from art_ssni.zoo import train_zoo

    check_writable(args.out)
    metrics = train_zoo(
        args.out,
        seed=args.seed,
        unet_steps=args.unet_steps,
        classifier_epochs=args.classifier_epochs,
        eval_size=args.eval_size,
        progress=not args.quiet,
    )
    print(json.dumps(metrics, indent=2, default=str))
    return 0


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    if args.render is not None:
        return render_command(args)
    nproc = shard_count(args)
    if nproc > 1:  # every core by default (--processes 1: one process); bad arguments refused here, once
        _check_leaderboard(args)
        return run_sharded(getattr(args, "argv", None) or sys.argv[1:], nproc)
    from art_ssni.attacks.protocol import AttackProtocol
    from art_ssni.evaluation.stats import format_accuracy
    from art_ssni.leaderboard import leaderboard
    from art_ssni.leaderboard.api import default_eps

    _check_leaderboard(args)
    steps = args.steps if args.sampler == "ddim" else None
    optional = {"t_star": args.t_star, "steps": steps, "surrogate_steps": args.surrogate_steps}
    try:
        protocol = AttackProtocol(
            eps=args.eps if args.eps is not None else default_eps(args.dataset, args.norm),
            threat_model=args.norm,
            batch_size=args.batch_size,
            **{k: getattr(args, k) for k in PROTOCOL_OPTIONS},
        )
        same = "defence diffusion data_dir model_dir reference n_ref out device sampler gradient"
        info = leaderboard(
            args.model,
            dataset=args.dataset,
            protocol=protocol,
            n_ex=args.n_images if args.n_images is not None else 512,
            progress=not args.quiet,
            **{k: getattr(args, k) for k in same.split()},
            **{k: v for k, v in optional.items() if v is not None},
        )
    except ImportError as err:
        raise CLIError(str(err)) from err
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"{info['name']}  {args.dataset} {info['threat_model']} eps={info['eps']:.5g}  n={info['n_ex']}")
        print("accuracies in %, 95 % Wilson intervals in brackets")
        for name, table in info["protocols"].items():
            attacks = ", ".join(f"{a} {format_accuracy(r)}" for a, r in table["attacks"].items())
            print(
                f"{name}: clean {format_accuracy(table['clean'])}  worst case {format_accuracy(table['worst_case'])}"
                f"  ({attacks})"
            )
        print(f"wrote {args.out / 'model_info.json'}")
    return 0


def _check_leaderboard(args: argparse.Namespace) -> None:
    """What a leaderboard run would fail on later, from files alone (before any model is loaded or defence runs)."""
    check_writable(args.out)
    from art_ssni.diffusion.hub import num_train_timesteps, resolve
    from art_ssni.leaderboard.data import DATASETS

    check_eps(args.eps, args.norm, DATASETS[args.dataset][1])
    if args.diffusion is not None:
        check_t_star(args.t_star, num_train_timesteps(resolve(args.diffusion)))
    elif args.dataset == "digits":
        from art_ssni.zoo import weights_dir

        check_t_star(args.t_star, num_train_timesteps(weights_dir("digits")))
    if args.dataset == "digits":
        from art_ssni.zoo import load_digits_split

        if args.n_images is not None:  # an explicit count the data cannot give is refused; the default adapts
            check_n_images(args.n_images, load_digits_split()[2].shape[0], "the digits zoo's data")
    elif args.n_images is not None and args.data_dir is not None and args.data_dir.suffix != ".npz":
        check_n_images(args.n_images, 10_000, "the CIFAR-10 test batches")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``art-ssni`` console script; returns the exit status.

    Without a terminal on stderr (a log, CI) and without ``--quiet``, progress bars print as plain lines every few
    percent or minutes (:class:`~art_ssni.cli_args.LogProgress`).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what a sharded run starts again in each process
    stderr = sys.stderr
    logged = not getattr(args, "quiet", False) and not (hasattr(stderr, "isatty") and stderr.isatty())
    if logged:
        sys.stderr = LogProgress(stderr)
    try:
        return int(args.func(args))
    except (CLIError, ValueError, TypeError, FileNotFoundError, OSError) as err:
        print(f"art-ssni {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"art-ssni {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        sys.stderr = stderr


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
