"""The ``art-ssni`` command line (layer 8): parse, call the library, print, plot. No logic of its own.

Sub-commands: ``evaluate`` (compare defences under adaptive attacks), ``calibrate`` (fit reference statistics),
``train-zoo`` (retrain the shipped digits models), ``leaderboard`` (a fixed protocol, resumable, torchrun-sharded).
``art-ssni <command> --help`` documents every option.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from art_ssni.cli_frontier import add_frontier_parser, add_render_arguments, render_command

__all__ = ["build_parser", "main"]


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


def _csv(text: str) -> list[str]:
    items = [part.strip() for part in text.split(",") if part.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list of names")
    return items


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from err
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from err
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return value


def _attack_names() -> list[str]:
    from art_ssni.attacks.registry import ATTACKS

    return list(ATTACKS)


def _odd_int(text: str) -> int:
    value = _positive_int(text)
    if value % 2 == 0:
        raise argparse.ArgumentTypeError(f"must be an odd integer >= 1, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from art_ssni._version import __version__

    parser = argparse.ArgumentParser(
        prog="art-ssni", description="Sample-Specific Noise Injection diffusion purification for ART."
    )
    parser.add_argument("--version", action="version", version=f"art-ssni {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ev = sub.add_parser(
        "evaluate",
        help="compare no defence, DiffPure, SSNI-N and SSNI-L under adaptive attacks",
        description="Clean and robust accuracy of each defence under the project's adaptive attacks (per-sample "
        "worst case over attacks). Defaults to the shipped digits zoo; writes results.json and PNG plots.",
    )
    ev.add_argument(
        "--defences",
        type=_csv,
        default=["none", "diffpure", "ssni-n", "ssni-l"],
        help="comma-separated: 'none' and/or registered defence names (default: %(default)s)",
    )
    ev.add_argument(
        "--attack",
        type=_csv,
        default=["pgd-eot", "score-aware"],
        help=f"comma-separated attacks among {', '.join(_attack_names())}; each defence gets the applicable ones, "
        "the others are skipped with a message (default: %(default)s)",
    )
    ev.add_argument("--n-images", type=_positive_int, default=32, help="test images evaluated (default: %(default)s)")
    ev.add_argument("--eps", type=_positive_float, default=None, help="attack budget (default: the zoo's, 0.2 ℓ∞)")
    ev.add_argument("--norm", choices=["inf", "2"], default="inf", help="attack norm (default: %(default)s)")
    ev.add_argument("--eps-step", type=_positive_float, default=None, help="step size (default: eps / 4)")
    ev.add_argument("--iterations", type=_positive_int, default=10, help="attack iterations (default: %(default)s)")
    ev.add_argument("--eot", type=_positive_int, default=4, help="EOT samples per iteration (default: %(default)s)")
    ev.add_argument("--votes", type=_odd_int, default=9, help="K of the vote-K protocol, odd (default: %(default)s)")
    ev.add_argument("--redraws", type=_positive_int, default=5, help="re-judgings of the single protocol (default: 5)")
    ev.add_argument("--resubmit", type=_positive_int, default=10, help="N of the resubmit-N protocol (default: 10)")
    ev.add_argument("--t-star", type=_positive_int, default=None, help="base noise level t* (default: the zoo's)")
    ev.add_argument("--tau", type=_positive_float, default=None, help="SSNI-N temperature (default: reference std)")
    ev.add_argument("--bias", type=float, default=5.0, help="reweighting bias b (default: %(default)s)")
    ev.add_argument(
        "--sampler",
        choices=["ddpm", "ddim"],
        default="ddim",
        help="reverse sampler of the purifier (default: %(default)s)",
    )
    ev.add_argument("--steps", type=_positive_int, default=10, help="DDIM steps (default: %(default)s)")
    ev.add_argument("--eta", type=float, default=1.0, help="DDIM eta in [0, 1] (default: %(default)s)")
    ev.add_argument(
        "--gradient",
        choices=["exact", "surrogate"],
        default="exact",
        help="attack gradient through the purifier (default: %(default)s)",
    )
    ev.add_argument(
        "--base",
        choices=["diffpure", "gns", "gdmp"],
        default="diffpure",
        help="base purification method: 'diffpure', 'ssni-n', 'ssni-l' in --defences become the base "
        "and its SSNI variants (e.g. gns, gns+ssni-n, gns+ssni-l) (default: %(default)s)",
    )
    ev.add_argument(
        "--checkpoint",
        action="store_true",
        help="checkpoint every reverse step (bounded memory for big images; slower)",
    )
    ev.add_argument("--seed", type=int, default=0, help="seed of every random draw (default: %(default)s)")
    ev.add_argument("--out", type=Path, default=Path("results/evaluate"), help="output folder (default: %(default)s)")
    ev.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="device (default: %(default)s)")
    ev.add_argument("--zoo", default="digits", help="zoo entry giving the default models and data (default: digits)")
    ev.add_argument("--diffusion", type=Path, default=None, help="a local diffusers folder to use instead of the zoo's")
    ev.add_argument(
        "--classifier",
        default=None,
        metavar="MODULE:FACTORY",
        help="a Python factory returning your torch classifier (inputs in clip values), instead of the zoo's",
    )
    ev.add_argument(
        "--data",
        type=Path,
        default=None,
        help=".npz with x_test, y_test (NCHW, in [0, 1]) and optionally x_train to calibrate on",
    )
    ev.add_argument("--reference", type=Path, default=None, help="reference stats JSON (art-ssni calibrate)")
    ev.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    ev.add_argument("--quiet", action="store_true", help="no progress bars")
    ev.set_defaults(func=_cmd_evaluate)

    cal = sub.add_parser(
        "calibrate",
        help="fit reference score-norm statistics on clean images and write them as JSON",
        description="Fit ReferenceStats (mean, std, min, max, quantiles of clean score norms) for SSNI.",
    )
    cal.add_argument(
        "--images",
        type=Path,
        default=None,
        help=".npy (N, C, H, W) or .npz (key x or x_train) of clean images in [0, 1] (default: zoo train)",
    )
    cal.add_argument("--diffusion", type=Path, default=None, help="local diffusers folder (default: the zoo's)")
    cal.add_argument("--zoo", default="digits", help="zoo entry for the defaults (default: %(default)s)")
    cal.add_argument("--score-steps", type=_positive_int, default=20, help="T' (default: %(default)s)")
    cal.add_argument("--batch-size", type=_positive_int, default=256, help="images per batch (default: %(default)s)")
    cal.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    cal.add_argument("--out", type=Path, default=Path("reference.json"), help="output JSON (default: %(default)s)")
    cal.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="device (default: %(default)s)")
    cal.set_defaults(func=_cmd_calibrate)

    tr = sub.add_parser(
        "train-zoo",
        help="retrain the shipped digits models (diffusion UNet, CNN, reference stats, metrics)",
        description="Seeded, reproducible training of the digits zoo into --out (default: a new folder).",
    )
    tr.add_argument("--out", type=Path, default=Path("zoo-digits"), help="output folder (default: %(default)s)")
    tr.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    tr.add_argument("--unet-steps", type=_positive_int, default=3000, help="UNet training steps (default: %(default)s)")
    tr.add_argument("--classifier-epochs", type=_positive_int, default=40, help="CNN epochs (default: %(default)s)")
    tr.add_argument("--eval-size", type=_positive_int, default=None, help="evaluate on this many test images")
    tr.add_argument("--quiet", action="store_true", help="no progress bars")
    tr.set_defaults(func=_cmd_train_zoo)

    lb = sub.add_parser(
        "leaderboard",
        help="RobustBench-style entry: a classifier behind a defence under a fixed protocol (resumable, torchrun)",
        description="Clean and robust accuracy of a randomized defence under a fixed protocol (AutoAttack rand: "
        "APGD-CE + APGD-DLR with EOT; PGD-EOT; score-aware), per-example worst case, fixed seeds. Resumes from --out; "
        "shard with torchrun --nproc_per_node=N. Writes OUT/model_info.json. See docs/robustbench.md.",
    )
    lb.add_argument("--model", default="zoo", help="RobustBench model name (cifar10) or 'zoo' (digits) (default: zoo)")
    lb.add_argument("--dataset", choices=["digits", "cifar10"], default="digits", help="(default: %(default)s)")
    lb.add_argument("--threat", choices=["Linf", "L2"], default="Linf", help="threat model (default: %(default)s)")
    lb.add_argument("--eps", default=None, help="radius, e.g. 8/255 (default: 8/255 Linf, 0.5 L2; digits: the zoo's)")
    lb.add_argument("--n-ex", type=_positive_int, default=512, help="first N test examples (default: %(default)s)")
    lb.add_argument("--defence", default="ssni-n", help="'none' or a registered defence name (default: %(default)s)")
    lb.add_argument(
        "--attacks",
        type=_csv,
        default=["rand-aa", "pgd-eot"],
        help="comma-separated among rand-aa, pgd-eot, bpda-eot, score-aware, score-aware-st (default: rand-aa,pgd-eot)",
    )
    lb.add_argument("--diffusion", type=Path, default=None, help="local diffusers folder (cifar10: required)")
    lb.add_argument("--data-dir", type=Path, default=None, help="CIFAR-10 folder (python/binary batches) or .npz")
    lb.add_argument("--model-dir", type=Path, default=Path("models"), help="RobustBench models (default: models)")
    lb.add_argument("--reference", type=Path, default=None, help="reference stats JSON (default: zoo's, or fitted)")
    lb.add_argument("--n-ref", type=_positive_int, default=5000, help="training images to fit the reference on")
    lb.add_argument("--out", type=Path, default=Path("results/leaderboard"), help="output (default: %(default)s)")
    lb.add_argument(
        "--iterations",
        type=_positive_int,
        default=None,
        help="iterations of every attack (default: the standard protocol, APGD 100, PGD 200)",
    )
    lb.add_argument("--eot", type=_positive_int, default=20, help="EOT samples per gradient (default: %(default)s)")
    lb.add_argument("--eps-step", type=_positive_float, default=None, help="PGD step (default: 0.007 at 8/255)")
    lb.add_argument("--votes", type=_odd_int, default=9, help="K of the vote-K protocol, odd (default: %(default)s)")
    lb.add_argument("--batch-size", type=_positive_int, default=32, help="examples per batch (default: %(default)s)")
    lb.add_argument("--seed", type=int, default=0, help="seed of the run (default: %(default)s)")
    lb.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="(default: %(default)s)")
    lb.add_argument("--t-star", type=_positive_int, default=None, help="base noise level t* (default: 100 / zoo's)")
    lb.add_argument("--sampler", choices=["ddpm", "ddim"], default="ddpm", help="reverse sampler (default: ddpm)")
    lb.add_argument("--steps", type=_positive_int, default=None, help="DDIM steps (with --sampler ddim)")
    lb.add_argument("--gradient", choices=["exact", "surrogate"], default="exact", help="(default: %(default)s)")
    lb.add_argument("--surrogate-steps", type=_positive_int, default=None, help="DDIM steps of the surrogate")
    lb.add_argument("--quiet", action="store_true", help="no progress bars")
    add_render_arguments(lb)
    lb.set_defaults(func=_cmd_leaderboard)
    add_frontier_parser(sub)
    return parser


# ---------------------------------------------------------------------------------------------------- helpers
def _load_array_file(path: Path, keys: Sequence[str]) -> Any:
    import numpy as np

    if not path.is_file():
        raise CLIError(f"{path}: file not found")
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False)
        with np.load(path, allow_pickle=False) as data:
            for key in keys:
                if key in data:
                    return data[key]
            raise CLIError(f"{path}: none of the arrays {list(keys)} found (has {list(data.keys())})")
    except (OSError, ValueError) as err:
        raise CLIError(f"{path}: cannot read array file ({err})") from err


def _load_factory(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise CLIError(f"--classifier must be MODULE:FACTORY, got {spec!r}")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise CLIError(f"--classifier {spec!r}: {err}") from err
    return factory()


def _versions() -> dict[str, str]:
    import art
    import diffusers
    import numpy
    import torch

    from art_ssni._version import __version__

    return {
        "art_ssni": __version__,
        "torch": torch.__version__,
        "adversarial-robustness-toolbox": art.__version__,
        "diffusers": diffusers.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "torch_threads": str(torch.get_num_threads()),
    }


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


def _check_out_dir(path: Path) -> None:
    """Fail before any expensive work when the output folder cannot be written."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise CLIError(f"--out {path}: not writable ({err.strerror or err})") from err


# ---------------------------------------------------------------------------------------------------- commands
def _cmd_evaluate(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from art_ssni import DiffusionModel, ReferenceStats, zoo
    from art_ssni.evaluation.compare import compare_defences

    _check_out_dir(args.out)
    torch.manual_seed(args.seed)
    models = zoo.load(args.zoo, device=args.device)
    diffusion = DiffusionModel.from_pretrained(args.diffusion).to(args.device) if args.diffusion else models.diffusion
    classifier = _load_factory(args.classifier).to(args.device).eval() if args.classifier else models.classifier
    x, y = models.x_test, models.y_test
    if args.data is not None:
        x = np.asarray(_load_array_file(args.data, ["x_test", "x"]), dtype=np.float32)
        y = np.asarray(_load_array_file(args.data, ["y_test", "y"]), dtype=np.int64)
    if len(x) != len(y):
        raise CLIError(f"--data: {len(x)} images but {len(y)} labels")
    x, y = x[: args.n_images], y[: args.n_images]
    reference: ReferenceStats | None = models.reference
    if args.reference is not None:
        reference = ReferenceStats.from_json(args.reference)
    elif args.diffusion is not None or args.data is not None:
        reference = None  # the zoo's statistics belong to the zoo's model and data: calibrate instead
    defences = [_with_base(name, args.base) for name in args.defences]
    t_star = args.t_star or (36 if args.base == "gdmp" else models.t_star)
    eps = args.eps or models.eps
    defence_kwargs: dict[str, Any] = dict(
        t_star=t_star,
        bias=args.bias,
        tau=args.tau,
        sampler=args.sampler,
        eta=args.eta,
        seed=args.seed,
        gradient=args.gradient,
        checkpoint=args.checkpoint,
        steps=args.steps if args.sampler == "ddim" else None,
    )
    if args.base == "gdmp":
        from art_ssni.ssni.bases import GDMP, gdmp_scale_for

        defence_kwargs["base"] = GDMP(scale=gdmp_scale_for(x.shape[1:]))
    needs_reference = any(d not in ("none", "diffpure", "gns", "gdmp") for d in defences)
    if needs_reference and reference is None:
        if args.data is None:
            raise CLIError("--reference is needed with --diffusion (run art-ssni calibrate first)")
        x_train = np.asarray(_load_array_file(args.data, ["x_train"]), dtype=np.float32)
        from art_ssni import SSNIPreprocessor

        reference = SSNIPreprocessor(diffusion, seed=args.seed, device_type=args.device).fit(x_train).reference
    from art_ssni.attacks.registry import AttackSettings

    attack_settings = AttackSettings(
        eps=eps,
        norm="inf" if args.norm == "inf" else 2,
        eps_step=args.eps_step,
        max_iter=args.iterations,
        eot=args.eot,
        seed=args.seed,
        verbose=not args.quiet,
    )
    start = time.perf_counter()
    rows = compare_defences(
        classifier,
        diffusion,
        x,
        y,
        defences=defences,
        attacks=args.attack,
        reference=reference,
        nb_classes=int(models.nb_classes if args.classifier is None else int(np.max(y)) + 1),
        clip_values=models.clip_values,
        defence_kwargs=defence_kwargs,
        attack_settings=attack_settings,
        votes=args.votes,
        redraws=args.redraws,
        resubmit=args.resubmit,
        seed=args.seed,
        device_type="gpu" if args.device == "cuda" else "cpu",
        progress=None if args.quiet else (lambda msg: print(msg, file=sys.stderr)),
    )
    seconds = time.perf_counter() - start
    print(
        f"n = {len(x)}, eps = {eps:g}, {args.iterations} iterations, EOT {args.eot}, single = mean of "
        f"{args.redraws} re-judgings, resubmit-{args.resubmit}, vote-{args.votes}; {seconds:.0f} s"
    )
    _print_table(rows)
    results = {
        "command": "evaluate",
        "settings": {
            "zoo": args.zoo,
            "diffusion": str(args.diffusion) if args.diffusion else f"zoo:{args.zoo}",
            "classifier": args.classifier or f"zoo:{args.zoo}",
            "n_images": int(len(x)),
            "seed": args.seed,
            "base": args.base,
            "defences": defences,
            "attacks": args.attack,
            "attack": {k: (str(v) if k == "norm" else v) for k, v in attack_settings.__dict__.items()},
            "defence": defence_kwargs,
            "votes": args.votes,
            "redraws": args.redraws,
            "resubmit": args.resubmit,
            "reference": reference.to_dict() if reference else None,
        },
        "versions": _versions(),
        "seconds": seconds,
        "defences": [row.__dict__ for row in rows],
    }
    _write_json(args.out / "results.json", results)
    if not args.no_plots:
        _evaluate_plots(rows, args.out, t_star)
    print(f"wrote {args.out / 'results.json'} ({seconds:.0f} s)")
    return 0


def _with_base(name: str, base: str) -> str:
    """``diffpure`` / ``ssni-n`` / ``ssni-l`` on another base: its registry name (``gns``, ``gns+ssni-n`` ...)."""
    if base == "diffpure" or name not in ("diffpure", "ssni-n", "ssni-l"):
        return name
    return base if name == "diffpure" else f"{base}+{name}"


def _print_table(rows: Sequence[Any]) -> None:
    """Worst case (clean AND every attack) per defence and protocol, in %, with 95 % Wilson intervals."""
    from art_ssni.evaluation.stats import format_accuracy, mcnemar_p

    protocols = ("single", "resubmit", "vote")
    print("worst case (clean AND every attack), % [95 % Wilson interval]")
    print("  ".join([f"{'defence':<14}", *(f"{p:<22}" for p in protocols), "attacks"]))
    for row in rows:
        res = row.result
        cells = [format_accuracy(res["protocols"][p]["worst_case"]) for p in protocols]
        print("  ".join([f"{row.defence:<14}", *(f"{c:<22}" for c in cells), ", ".join(row.attacks) or "-"]))
    base = next((r for r in rows if r.defence in ("diffpure", "gns", "gdmp")), None)
    if base is not None:
        for row in rows:
            if row is base or row.defence == "none":
                continue
            a, b = row.result["per_example"]["single"]["worst_case"], base.result["per_example"]["single"]["worst_case"]
            print(f"McNemar (single, first re-judging) {row.defence} vs {base.defence}: p = {mcnemar_p(a, b):.3g}")


def _evaluate_plots(rows: Sequence[Any], out: Path, t_star: int) -> None:
    import numpy as np

    from art_ssni import plots

    plots.accuracy_bars(
        [r.defence for r in rows],
        [r.result["protocols"]["single"]["clean"]["accuracy"] for r in rows],
        [r.result["protocols"]["single"]["worst_case"]["accuracy"] for r in rows],
        out / "accuracy.png",
    )
    ssni = [r for r in rows if r.norms_clean]
    if ssni:
        plots.score_norm_histogram(
            np.array(ssni[0].norms_clean),
            np.array(ssni[0].norms_adversarial),
            out / "score_norms.png",
            title=f"Score norms, worst-case attacks on {ssni[0].defence}",
        )
        series = {}
        for r in ssni:
            series[f"{r.defence} clean"] = np.array(r.t_clean)
            series[f"{r.defence} adversarial"] = np.array(r.t_adversarial)
        plots.timestep_distribution(series, out / "timesteps.png", t_star=t_star)


def _cmd_calibrate(args: argparse.Namespace) -> int:
    import numpy as np

    from art_ssni import DiffusionModel, SSNIPreprocessor, zoo

    if args.out.is_dir():
        raise CLIError(f"--out {args.out}: is a folder; give the JSON file to write")
    _check_out_dir(args.out.parent)  # before scoring thousands of images
    if args.images is None or args.diffusion is None:
        models = zoo.load(args.zoo, device=args.device)
    images = models.x_train if args.images is None else _load_array_file(args.images, ["x", "x_train"])
    diffusion = models.diffusion if args.diffusion is None else DiffusionModel.from_pretrained(args.diffusion)
    images = np.asarray(images)
    pre = SSNIPreprocessor(
        diffusion,
        score_steps=args.score_steps,
        batch_size=args.batch_size,
        seed=args.seed,
        device_type="gpu" if args.device == "cuda" else "cpu",
    )
    reference = pre.fit(images).reference
    assert reference is not None
    reference.to_json(args.out)
    print(
        f"{reference.count} images: mean {reference.mean:.4g}, std {reference.std:.4g}, "
        f"min {reference.min:.4g}, max {reference.max:.4g} -> {args.out}"
    )
    return 0


def _cmd_train_zoo(args: argparse.Namespace) -> int:
    from art_ssni.zoo import train_zoo

    _check_out_dir(args.out)
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
    from art_ssni.leaderboard import leaderboard, parse_eps

    optional = {"t_star": args.t_star, "steps": args.steps, "surrogate_steps": args.surrogate_steps}
    try:
        info = leaderboard(
            args.model,
            dataset=args.dataset,
            threat_model=args.threat,
            eps=parse_eps(args.eps) if args.eps else None,
            n_ex=args.n_ex,
            defence=args.defence,
            attacks=args.attacks,
            diffusion=args.diffusion,
            data_dir=args.data_dir,
            model_dir=args.model_dir,
            reference=args.reference,
            n_ref=args.n_ref,
            out=args.out,
            iterations=args.iterations,
            eot=args.eot,
            eps_step=args.eps_step,
            votes=args.votes,
            batch_size=args.batch_size,
            seed=args.seed,
            device=args.device,
            progress=not args.quiet,
            sampler=args.sampler,
            gradient=args.gradient,
            **{k: v for k, v in optional.items() if v is not None},
        )
    except ImportError as err:
        raise CLIError(str(err)) from err
    if int(os.environ.get("RANK", "0")) == 0:
        from art_ssni.evaluation.stats import format_accuracy

        print(f"{info['name']}  {args.dataset} {info['threat_model']} eps={info['eps']:.5g}  n={info['n_ex']}")
        for name, table in info["protocols"].items():
            attacks = ", ".join(f"{a} {format_accuracy(r)}" for a, r in table["attacks"].items())
            print(
                f"{name}: clean {format_accuracy(table['clean'])}  worst case {format_accuracy(table['worst_case'])}"
                f"  ({attacks})"
            )
        print(f"wrote {args.out / 'model_info.json'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``art-ssni`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except CLIError as err:
        print(f"art-ssni {args.command}: error: {err}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, FileNotFoundError, OSError) as err:
        print(f"art-ssni {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"art-ssni {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
