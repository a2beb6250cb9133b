"""What a leaderboard run costs: UNet evaluations per example (a formula) times a measured time per evaluation.

The purifier's UNet dominates the cost (the classifier runs once per purified row, the UNet ``K`` times). Per
example, with ``T'`` scoring timesteps (SSNI only; 0 for DiffPure), ``K`` reverse steps at the largest noise
level the defence can choose (DDPM: ``t_max``; DDIM: ``min(steps, t_max)``; ``t_max = t*`` for DiffPure and
``t* - 1 + b`` for SSNI), EOT ``e`` and backward counted as two forward evaluations:

* one prediction: ``P = T' + K``;
* one gradient: ``G = T' + c·e·K`` with ``c = 4`` (forward, checkpoint recomputation, backward) or ``c = 3``
  without checkpointing;
* PGD-EOT / BPDA-EOT: ``G`` per iteration (every example runs to the end), plus ``select_draws·P`` at each of
  the at most 10 checkpoints where the candidates are judged; score-aware PGD adds ``3·T'`` per iteration
  (the score term's gradient; ``3·e·T'`` for the straight-through variant); APGD-CE / APGD-DLR: ``G + P``
  per iteration (its loss check) and ``4·P`` around them (ART's probe when it is built, first check, second
  loss at the first step, last check);
* the evaluation around the attacks: ``(select_draws + redraws + resubmit + votes)·P`` on the clean input and on
  each attack output (the attacker's selection draws, then the three protocols' judging draws); an attack that
  does not apply costs what the PGD-EOT restart in its place costs.

It is an upper bound: SSNI chooses ``t_i <= t_max``. Run
``python -m art_ssni.leaderboard.cost`` to time the google/ddpm-cifar10-32 architecture (random weights, nothing
downloaded) on this machine and project the paper's CIFAR-10 protocol.
"""

from __future__ import annotations

import argparse
import time
from types import SimpleNamespace
from typing import Any

import torch

from art_ssni.attacks.pgd_eot import PGDEOT
from art_ssni.attacks.requirements import Requires
from art_ssni.diffusion.architectures import ddpm_cifar10_unet
from art_ssni.leaderboard.protocol import AttackProtocol

__all__ = ["time_unet", "unet_evaluations"]


def unet_evaluations(
    protocol: AttackProtocol,
    *,
    t_star: int,
    ssni: bool,
    bias: float = 5.0,
    sampler: str = "ddpm",
    steps: int | None = None,
    score_steps: int = 20,
    checkpoint: bool = True,
) -> dict[str, int]:
    """Upper bound of UNet row evaluations per example, by attack and in total (see the module docstring).

    :return: ``{"evaluation": ..., <attack>: ..., "total": ...}`` (forward-equivalent UNet rows per example).
    """
    t_max = int(round(t_star - 1 + bias)) if ssni else int(t_star)
    k = t_max if sampler == "ddpm" else min(int(steps or 0), t_max)
    score = int(score_steps) if ssni else 0
    predict = score + k
    grad = score + (4 if checkpoint else 3) * protocol.eot * k
    offered = {Requires.PURIFIER, Requires.SINGLE_STAGE} | ({Requires.SELECTOR} if ssni else set())
    run, _ = protocol.applicable(offered)
    out: dict[str, int] = {}
    n_attacks = 0
    for listed in protocol.attacks:
        name = listed if listed in run else "pgd-eot"  # a PGD-EOT restart stands in for an inapplicable attack
        per_iter = grad
        if name in ("score-aware", "score-aware-stealth"):
            per_iter += 3 * score
        elif name in ("selective-eot", "selective-eot-vote"):  # every EOT copy is its own row, scored too
            per_iter = protocol.eot * score + (4 if checkpoint else 3) * protocol.eot * k
        elif name == "score-aware-st":
            per_iter += 3 * protocol.eot * score
        iters = protocol.iterations_of(name)
        if name == "rand-aa":
            out[listed] = 2 * (iters * (per_iter + predict) + 4 * predict)  # APGD-CE and APGD-DLR
            n_attacks += 2
        else:
            plan = SimpleNamespace(max_iter=iters, select_every=None)
            judgings = len(PGDEOT.checkpoints(plan))  # type: ignore[arg-type]
            out[listed] = iters * per_iter + judgings * protocol.select_draws * predict
            if name.startswith("score-aware"):  # the levels and score norms it records of its result
                out[listed] += 2 * score
            n_attacks += 1
    judged = protocol.select_draws + protocol.redraws + protocol.resubmit + protocol.votes  # selection + judging
    out["evaluation"] = (1 + n_attacks) * judged * predict
    out["total"] = sum(out.values())
    return out


def time_unet(unet: Any, *, rows: int, device: str = "cpu", repeats: int = 3) -> dict[str, float]:
    """Seconds per UNet row: forward only (no grad) and forward + backward to the input, at ``rows`` rows a call."""
    unet = unet.to(device).requires_grad_(False)
    size, ch = int(unet.config.sample_size), int(unet.config.in_channels)
    x = torch.randn(rows, ch, size, size, device=device)
    t = torch.full((rows,), 50, device=device, dtype=torch.long)

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def timed(fn: Any) -> float:
        fn()  # warm-up
        sync()
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        sync()
        return (time.perf_counter() - start) / (repeats * rows)

    def forward() -> None:
        with torch.no_grad():
            unet(x, t)

    def backward() -> None:
        xg = x.clone().requires_grad_(True)
        unet(xg, t).sample.sum().backward()

    return {"forward": timed(forward), "forward_backward": timed(backward), "rows": float(rows)}


def main(argv: list[str] | None = None) -> int:
    """Time the CIFAR-10 UNet here and project the paper's protocol (``--help`` for the options)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--rows", type=int, default=16, help="UNet rows per timed call (default: 16)")
    parser.add_argument("--n-ex", type=int, default=512, help="examples of the projected run (default: 512)")
    args = parser.parse_args(argv)
    protocol = AttackProtocol(eps=8 / 255, attacks=("rand-aa", "pgd-eot", "score-aware"))
    unet = ddpm_cifar10_unet()
    params = sum(p.numel() for p in unet.parameters())
    timing = time_unet(unet, rows=args.rows, device=args.device)
    per_row = timing["forward"]
    print(
        f"ddpm-cifar10-32 UNet ({params / 1e6:.1f}M parameters) on {args.device}, {torch.get_num_threads()} "
        f"thread(s), {args.rows} rows a call: forward {1e3 * per_row:.2f} ms/row, forward+backward "
        f"{1e3 * timing['forward_backward']:.2f} ms/row"
    )
    for defence, ssni in (("diffpure", False), ("ssni-n", True)):
        counts = unet_evaluations(protocol, t_star=100, ssni=ssni)
        hours = counts["total"] * per_row * args.n_ex / 3600
        parts = ", ".join(f"{k} {v:,}" for k, v in counts.items() if k != "total")
        print(
            f"{defence}: {counts['total']:,} UNet rows per example ({parts}); {args.n_ex} examples ≈ "
            f"{hours:,.0f} h at the forward rate above"
        )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
