"""The fixed attack protocol of the leaderboard for randomized defences.

Attack names (``Protocol.attacks``):

* ``"rand-aa"`` -- AutoAttack's "rand" version for randomized defences (Croce & Hein 2020): APGD-CE and APGD-DLR
  (ART's :class:`~art.attacks.evasion.AutoProjectedGradientDescent`), 100 iterations, 1 restart, initial step
  ``2·eps``, each gradient averaged over ``eot`` purifications (EOT 20, through the preprocessor's
  ``eot_samples``). Reported as two attacks, ``"apgd-ce"`` and ``"apgd-dlr"``, and combined as ``"rand-aa"``.
* ``"pgd-eot"`` -- :class:`~art_ssni.attacks.PGDEOT`, the SSNI paper's protocol: 200 iterations, EOT 20, no random
  start, step ``0.007`` at ``ε = 8/255`` (by default the same step-to-radius ratio at any other ``ε``).
* ``"bpda-eot"`` -- :class:`~art_ssni.attacks.BPDAEOT` with the PGD-EOT settings (defences with a purifier only).
* ``"score-aware"`` / ``"score-aware-st"`` -- :class:`~art_ssni.attacks.ScoreAwarePGD` (``λ = 1``, linear decay;
  the second also differentiates through a straight-through rounding of ``t``) with the PGD-EOT settings; SSNI
  defences only (DiffPure's noise level does not depend on the input).

Attacks that do not apply to a defence are skipped and listed as such in the results. Every random draw of a batch
is seeded by :func:`batch_seed` (the run's seed and the batch index), never by the process rank, so that a sharded
run and a single-process run give identical results.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from art.attacks.attack import EvasionAttack
from art.attacks.evasion import AutoProjectedGradientDescent

from art_ssni.attacks import BPDAEOT, PGDEOT, ScoreAwarePGD

__all__ = [
    "ATTACKS",
    "DEFAULT_ITERATIONS",
    "PAPER_STEP_RATIO",
    "THREAT_MODELS",
    "Protocol",
    "batch_seed",
]

#: attack names of the protocol, in the order they run
ATTACKS = ("rand-aa", "pgd-eot", "bpda-eot", "score-aware", "score-aware-st")

#: iterations of each attack in the standard protocol
DEFAULT_ITERATIONS = {"rand-aa": 100, "pgd-eot": 200, "bpda-eot": 200, "score-aware": 200, "score-aware-st": 200}

#: the SSNI paper's PGD step (0.007) over its radius (8/255)
PAPER_STEP_RATIO = 0.007 / (8 / 255)

#: RobustBench threat model -> attack norm
THREAT_MODELS: dict[str, str | int] = {"Linf": "inf", "L2": 2}

_NEEDS_PURIFIER = {"bpda-eot", "score-aware", "score-aware-st"}
_NEEDS_SSNI = {"score-aware", "score-aware-st"}


def batch_seed(seed: int, batch: int) -> int:
    """The seed of batch ``batch`` of a run seeded ``seed``: ``SeedSequence([seed, batch])``, a 31-bit int."""
    return int(np.random.SeedSequence([int(seed), int(batch)]).generate_state(1, dtype=np.uint32)[0] >> 1)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


@dataclass(frozen=True)
class Protocol:
    """Settings of a leaderboard evaluation (everything that determines its numbers, apart from the models).

    :param eps: radius of the threat model, > 0 (pixels in ``[0, 1]``; CIFAR-10 ℓ∞: ``8/255``, ℓ2: ``0.5``).
    :param threat_model: ``"Linf"`` or ``"L2"``.
    :param attacks: names among :data:`ATTACKS` (run in that order).
    :param iterations: iterations of every attack; ``None``: :data:`DEFAULT_ITERATIONS` (the standard protocol).
    :param eot: purifications averaged per gradient (EOT), >= 1 (standard: 20).
    :param eps_step: PGD-type step size; ``None``: ``PAPER_STEP_RATIO · eps`` (0.007 at 8/255).
    :param restarts: APGD restarts, >= 1 (AutoAttack rand: 1).
    :param lam: weight of the score term of the score-aware attacks, >= 0.
    :param votes: majority-vote purifications of the worst-case verdict, >= 1.
    :param batch_size: examples per batch (the unit of sharding and resuming), >= 1.
    :param seed: seed of the run, >= 0 (each batch derives its own with :func:`batch_seed`).
    """

    eps: float
    threat_model: str = "Linf"
    attacks: tuple[str, ...] = ("rand-aa", "pgd-eot")
    iterations: int | None = None
    eot: int = 20
    eps_step: float | None = None
    restarts: int = 1
    lam: float = 1.0
    votes: int = 1
    batch_size: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "attacks", tuple(self.attacks))
        self._check_params()

    def _check_params(self) -> None:
        if not _is_number(self.eps) or not math.isfinite(self.eps) or self.eps <= 0:
            raise ValueError(f"eps must be a finite number > 0, got {self.eps!r}.")
        if self.threat_model not in THREAT_MODELS:
            raise ValueError(f"threat_model must be one of {list(THREAT_MODELS)}, got {self.threat_model!r}.")
        if (
            not self.attacks
            or any(a not in ATTACKS for a in self.attacks)
            or len(set(self.attacks)) != len(self.attacks)
        ):
            raise ValueError(f"attacks must be distinct names among {list(ATTACKS)}, got {list(self.attacks)}.")
        if self.iterations is not None and (not _is_int(self.iterations) or self.iterations < 1):
            raise ValueError(f"iterations must be an int >= 1 or None, got {self.iterations!r}.")
        if not _is_int(self.eot) or self.eot < 1:
            raise ValueError(f"eot must be an int >= 1, got {self.eot!r}.")
        if self.eps_step is not None and (
            not _is_number(self.eps_step) or not math.isfinite(self.eps_step) or self.eps_step <= 0
        ):
            raise ValueError(f"eps_step must be a finite number > 0 or None, got {self.eps_step!r}.")
        if not _is_int(self.restarts) or self.restarts < 1:
            raise ValueError(f"restarts must be an int >= 1, got {self.restarts!r}.")
        if not _is_number(self.lam) or not math.isfinite(self.lam) or self.lam < 0:
            raise ValueError(f"lam must be a finite number >= 0, got {self.lam!r}.")
        if not _is_int(self.votes) or self.votes < 1:
            raise ValueError(f"votes must be an int >= 1, got {self.votes!r}.")
        if not _is_int(self.batch_size) or self.batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {self.batch_size!r}.")
        if not _is_int(self.seed) or self.seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {self.seed!r}.")

    # ------------------------------------------------------------------ derived settings
    @property
    def norm(self) -> str | int:
        """The attack norm: ``"inf"`` or ``2``."""
        return THREAT_MODELS[self.threat_model]

    @property
    def step(self) -> float:
        """The PGD-type step size actually used."""
        return float(self.eps_step) if self.eps_step is not None else PAPER_STEP_RATIO * float(self.eps)

    def iterations_of(self, attack: str) -> int:
        """Iterations of ``attack`` under this protocol."""
        return int(self.iterations) if self.iterations is not None else DEFAULT_ITERATIONS[attack]

    @property
    def is_standard(self) -> bool:
        """``True`` when iterations, EOT and restarts are those of the standard protocol."""
        return self.iterations is None and self.eot == 20 and self.restarts == 1

    def applicable(self, *, purified: bool, ssni: bool, base: str = "diffpure") -> tuple[list[str], list[str]]:
        """``(run, skipped)`` attack names for a defence with / without a purifier and an SSNI selector.

        ``base`` is the purifier's base method: the straight-through score-aware attack supports ``"diffpure"`` only.
        """
        run: list[str] = []
        skipped: list[str] = []
        for name in self.attacks:
            ok = (purified or name not in _NEEDS_PURIFIER) and (ssni or name not in _NEEDS_SSNI)
            ok = ok and not (name == "score-aware-st" and base != "diffpure")
            (run if ok else skipped).append(name)
        return run, skipped

    def describe(self, *, purified: bool, ssni: bool, base: str = "diffpure") -> dict[str, Any]:
        """The concrete settings of every attack that runs (JSON-ready), for the results file."""
        run, skipped = self.applicable(purified=purified, ssni=ssni, base=base)
        eot = self.eot if purified else 1
        attacks: dict[str, Any] = {}
        for name in run:
            if name == "rand-aa":
                attacks[name] = {
                    "attacks": ["apgd-ce", "apgd-dlr"],
                    "implementation": "art.attacks.evasion.AutoProjectedGradientDescent",
                    "iterations": self.iterations_of(name),
                    "restarts": int(self.restarts),
                    "initial_step": 2.0 * float(self.eps),
                    "eot": eot,
                }
            else:
                cls = {"pgd-eot": PGDEOT, "bpda-eot": BPDAEOT}.get(name, ScoreAwarePGD)
                attacks[name] = {
                    "implementation": f"art_ssni.attacks.{cls.__name__}",
                    "iterations": self.iterations_of(name),
                    "step": self.step,
                    "random_init": False,
                    "eot": eot,
                }
                if name.startswith("score-aware"):
                    attacks[name].update(
                        lam=float(self.lam), lam_schedule="linear", straight_through=name == "score-aware-st"
                    )
        return {
            **{k: v for k, v in asdict(self).items() if k not in ("attacks",)},
            "attacks": attacks,
            "skipped_attacks": skipped,
            "norm": str(self.norm),
            "eps_step": self.step,
            "standard": self.is_standard,
            "batch_seeds": "numpy.random.SeedSequence([seed, batch]).generate_state(1, uint32)[0] >> 1",
        }

    # ------------------------------------------------------------------ attacks
    def build(
        self, estimator: Any, *, purified: bool, ssni: bool, seed: int, base: str = "diffpure"
    ) -> dict[str, EvasionAttack]:
        """The attacks to run on ``estimator`` for one batch, seeded ``seed``, as ``{result name: attack}``.

        EOT: with a purifier, the estimator's ``SSNIPreprocessor`` must have ``eot_samples = eot`` (one batched
        call averages ``eot`` purifications), so the PGD-type attacks use ``eot_iter = 1``; the straight-through
        score-aware attack, which bypasses ``eot_samples``, uses ``eot_iter = eot``.
        """
        run, _ = self.applicable(purified=purified, ssni=ssni, base=base)
        pgd: dict[str, Any] = dict(
            norm=self.norm,
            eps=float(self.eps),
            eps_step=self.step,
            random_init=False,
            batch_size=self.batch_size,
            seed=int(seed),
            verbose=False,
            eot_iter=1,
        )
        out: dict[str, EvasionAttack] = {}
        for name in run:
            iters = self.iterations_of(name)
            if name == "rand-aa":
                for loss, label in (("cross_entropy", "apgd-ce"), ("difference_logits_ratio", "apgd-dlr")):
                    out[label] = AutoProjectedGradientDescent(
                        estimator,
                        norm=np.inf if self.norm == "inf" else 2,
                        eps=float(self.eps),
                        eps_step=2.0 * float(self.eps),
                        max_iter=iters,
                        targeted=False,
                        nb_random_init=self.restarts,
                        batch_size=self.batch_size,
                        loss_type=loss,
                        verbose=False,
                    )
            elif name == "pgd-eot":
                out[name] = PGDEOT(estimator, max_iter=iters, **pgd)
            elif name == "bpda-eot":
                out[name] = BPDAEOT(estimator, max_iter=iters, **pgd)
            else:
                kwargs = dict(pgd, max_iter=iters)
                straight = name == "score-aware-st"
                if straight:
                    kwargs["eot_iter"] = self.eot
                out[name] = ScoreAwarePGD(
                    estimator, lam=float(self.lam), lam_schedule="linear", straight_through=straight, **kwargs
                )
        return out
