"""Layer 8: the ``art-ssni frontier`` subcommand and ``art-ssni leaderboard --render`` (parsers and handlers).

:mod:`art_ssni.cli` calls :func:`add_frontier_parser` and :func:`add_render_arguments`; the work is done by
:func:`art_ssni.leaderboard.frontier.frontier`, :mod:`art_ssni.plots` and :mod:`art_ssni.leaderboard.render`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_frontier_parser", "add_render_arguments", "plot_frontier", "render_command"]


def add_frontier_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add ``frontier`` to the subcommands ``sub`` of ``art-ssni`` (``parents``: the options every sub-command shares,
    ``--seed``, ``--device``, ``--quiet``); returns its parser."""
    from art_ssni.cli_args import (  # noqa: F401 -- one import list
        ATTACK_WEIGHT_OPTIONS,
        NPROC_OPTION,
        add_options,
        csv_names_or_none,
        csv_positive_floats_or_none,
        csv_positive_ints,
        odd_int,
        positive_float,
        positive_int,
    )
    from art_ssni.leaderboard.frontier import BUDGETS, DEFAULT_ATTACKS, DEFAULT_T_STARS

    fr = sub.add_parser(
        "frontier",
        parents=parents,
        help="accuracy-robustness frontier of DiffPure vs SSNI on the digits zoo across t* and tau (resumable)",
        description="Sweep t* (and SSNI-N's tau) for DiffPure, SSNI-N and SSNI-L on the digits zoo: clean and "
        "worst-case robust accuracy over every applicable attack under single / resubmit-N / vote-K, 95 % Wilson "
        "intervals, exact McNemar p-values against DiffPure at the same t*, the chosen t on clean and worst-case "
        "inputs. Each point is a resumable leaderboard run in OUT/points/; shard with torchrun --nproc_per_node=N. "
        "Writes OUT/results.json and plots. See docs/frontier.md.",
    )
    add_options(fr, [
        (("--n-images", "--n-ex"), dict(dest="n_ex", type=positive_int, default=256,
          help="first N zoo test images (the zoo has 450)")),
        (("--t-stars",), dict(type=csv_positive_ints, default=list(DEFAULT_T_STARS), help="t* values (comma list)")),
        (("--t-star",), dict(dest="t_stars", type=lambda text: [positive_int(text)], default=argparse.SUPPRESS,
          help="one t*: the same as --t-stars with one value")),
        (("--defences",), dict(type=csv_names_or_none, default=["diffpure", "ssni-n", "ssni-l"],
          help="defences swept over t*")),
        (("--tau-scales",), dict(type=csv_positive_floats_or_none, default=[0.5, 1.0, 2.0],
          help="SSNI-N tau / reference std ('none': no tau sweep)")),
        (("--tau-t-star",), dict(type=positive_int, default=None,
          help="t* of the tau sweep and --extra (default: the middle t*)")),
        (("--extra",), dict(type=csv_names_or_none, default=[],
          help="more defences at --tau-t-star, e.g. gns,gns+ssni-n (default: none)")),
        (("--attacks", "--attack"), dict(dest="attacks", type=csv_names_or_none, default=list(DEFAULT_ATTACKS),
          help="comma-separated attack names")),
    ])  # fmt: skip
    fr.add_argument("--budget", choices=list(BUDGETS), default="quick", help="attack preset (default: %(default)s)")
    fr.add_argument("--iterations", type=positive_int, default=None, help="override the preset's iterations")
    fr.add_argument("--eot", type=positive_int, default=None, help="override the preset's EOT samples")
    fr.add_argument("--votes", type=odd_int, default=None, help="override the preset's K of vote-K (odd)")
    fr.add_argument("--redraws", type=positive_int, default=None, help="override the preset's re-judgings of single")
    fr.add_argument("--resubmit", type=positive_int, default=None, help="override the preset's N of resubmit-N")
    fr.add_argument(
        "--select-draws", type=positive_int, default=None, help="override the preset's draws judging iterates"
    )
    add_options(fr, ATTACK_WEIGHT_OPTIONS)
    fr.add_argument("--eps", type=positive_float, default=None, help="ℓ∞ radius, 0.2 or 8/255 (default: the zoo's)")
    fr.add_argument(
        "--eps-step", type=positive_float, default=None, help="PGD step (default: eps * max(0.223, 2.5 / iterations))"
    )
    fr.add_argument("--sampler", choices=["ddpm", "ddim"], default="ddim", help="(default: %(default)s)")
    fr.add_argument("--steps", type=positive_int, default=10, help="DDIM steps (default: %(default)s)")
    fr.add_argument(
        "--gradient",
        choices=["exact", "surrogate", "bpda"],
        default="exact",
        help="attack gradient through the purifier (default: %(default)s)",
    )
    fr.add_argument("--batch-size", type=positive_int, default=64, help="examples per batch (default: %(default)s)")
    fr.add_argument(
        "--surrogate-steps", type=positive_int, default=None, help="DDIM steps of the surrogate (default: 10)"
    )
    fr.add_argument("--out", type=Path, default=Path("results/frontier"), help="output folder (default: %(default)s)")
    add_options(fr, [NPROC_OPTION])
    fr.add_argument("--no-plots", action="store_true", help="write results.json only")
    fr.set_defaults(func=_cmd_frontier)
    return fr


def preflight_frontier(args: argparse.Namespace) -> Any:
    """Everything a frontier run would fail on later, refused before any defence runs; returns the zoo's models."""
    from art_ssni.cli_args import check_eps, check_n_images, check_t_star, check_writable
    from art_ssni.zoo import load

    check_writable(args.out)
    check_eps(args.eps, "Linf", (1, 8, 8))
    models = load("digits", device=args.device)
    for flag, values in (("--t-stars", args.t_stars), ("--tau-t-star", [args.tau_t_star] if args.tau_t_star else [])):
        for t_star in values:
            check_t_star(t_star, models.diffusion.num_timesteps, flag)
    check_n_images(args.n_ex, models.x_test.shape[0], "the digits zoo's data")
    return models


def _cmd_frontier(args: argparse.Namespace) -> int:
    import torch

    from art_ssni.attacks.protocol import AttackProtocol
    from art_ssni.cli_args import PROTOCOL_OPTIONS, run_sharded, shard_count
    from art_ssni.leaderboard.frontier import frontier, frontier_points

    models = preflight_frontier(args)  # bad arguments refused here, once, before any process starts
    nproc = shard_count(args)
    if nproc > 1:  # every core by default (--processes 1: one process)
        return run_sharded(getattr(args, "argv", None) or sys.argv[1:], nproc)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    points = frontier_points(
        args.defences, args.t_stars, tau_scales=args.tau_scales, tau_t_star=args.tau_t_star, extra_defences=args.extra
    )
    n = args.n_ex
    command = " ".join(["art-ssni", *sys.argv[1:]])  # as typed (python -m art_ssni.cli or the console script)
    protocol = AttackProtocol.from_budget(
        args.budget,
        eps=args.eps if args.eps is not None else float(models.eps),
        batch_size=args.batch_size,
        **{k: getattr(args, k) for k in PROTOCOL_OPTIONS},
    )
    results = frontier(
        models.classifier,
        models.diffusion,
        models.x_test[:n],
        models.y_test[:n],
        reference=models.reference,
        nb_classes=models.nb_classes,
        protocol=protocol,
        out=args.out,
        points=points,
        defence_kwargs={
            "sampler": args.sampler,
            "steps": args.steps,
            "gradient": args.gradient,
            "score_steps": models.score_steps,
            **({"surrogate_steps": args.surrogate_steps} if args.surrogate_steps is not None else {}),
        },
        info={"model": "zoo", "dataset": "digits", "command": command, "budget": args.budget},
        device=args.device,
        progress=not args.quiet,
    )
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    from art_ssni.evaluation.stats import format_accuracy

    print(f"n = {n}; accuracies in %, 95 % Wilson intervals; p = exact McNemar vs the constant base at the same t*")
    for p in results["points"]:
        single, vote = p["protocols"]["single"], p["protocols"]["vote"]
        pval = "" if not p["mcnemar"] else f"  p(single robust) = {p['mcnemar']['single']['worst_case']:.3g}"
        print(
            f"{p['id']:<24} clean {format_accuracy(single['clean'])}  robust {format_accuracy(single['worst_case'])}"
            f"  vote robust {format_accuracy(vote['worst_case'])}{pval}"
        )
    if not args.no_plots:
        for path in plot_frontier(results, args.out):
            print(f"wrote {path}")
    print(f"wrote {args.out / 'results.json'}")
    return 0


def plot_frontier(results: dict[str, Any], out: Path) -> list[Path]:
    """The frontier's PNGs in ``out`` (frontier per protocol, accuracy vs t*, vs tau, chosen t); returns the paths."""
    import art_ssni.plots as plots

    points = results["points"]
    written = []
    for protocol in ("single", "vote"):
        path = out / f"frontier_{protocol}.png"
        plots.frontier_plot(points, path, protocol=protocol)
        written.append(path)
    plots.accuracy_vs_t_star(points, out / "accuracy_vs_t_star.png")
    written.append(out / "accuracy_vs_t_star.png")
    if plots.accuracy_vs_tau(points, out / "accuracy_vs_tau.png"):
        written.append(out / "accuracy_vs_tau.png")
    if plots.chosen_t_histograms(points, out / "chosen_t.png"):
        written.append(out / "chosen_t.png")
    return written


def add_render_arguments(lb: argparse.ArgumentParser) -> None:
    """``art-ssni leaderboard --render FOLDER``: render results instead of running (see :func:`render_command`)."""
    lb.add_argument(
        "--render",
        type=Path,
        default=None,
        metavar="FOLDER",
        help="render every model_info.json under FOLDER into FOLDER/leaderboard.md and .html (runs nothing)",
    )
    lb.add_argument(
        "--page", type=Path, default=None, help="with --render: Markdown path (default: FOLDER/leaderboard.md)"
    )


def render_command(args: argparse.Namespace) -> int:
    """Handle ``--render``: write the Markdown table and the static HTML page, print the Markdown."""
    from art_ssni.cli_args import check_writable
    from art_ssni.leaderboard.render import render

    md = args.page if args.page is not None else args.render / "leaderboard.md"
    page = md.with_suffix(".html")
    check_writable(md.parent)
    rows = render(args.render, markdown=md, html_path=page)
    print(md.read_text(), end="")
    print(f"wrote {md} and {page} ({len(rows)} entries)")
    return 0
