"""The fixed attack protocol of the leaderboard for randomized defences.

Attack names (``AttackProtocol.attacks``):

* ``"rand-aa"`` -- AutoAttack's "rand" version for randomized defences (Croce & Hein 2020): APGD-CE and APGD-DLR
  (ART's :class:`~art.attacks.evasion.AutoProjectedGradientDescent`), 100 iterations, 1 restart, initial step
  ``2·eps``, each gradient averaged over ``eot`` purifications (EOT 20, through the preprocessor's
  ``eot_samples``). Reported as two attacks, ``"apgd-ce"`` and ``"apgd-dlr"``, and combined as ``"rand-aa"``.
* ``"pgd-eot"`` -- :class:`~art_ssni.attacks.PGDEOT`, the SSNI paper's protocol: 200 iterations, EOT 20, no random
  start, step ``0.007`` at ``ε = 8/255`` (by default the same step-to-radius ratio at any other ``ε``); every
  sample runs to the end and returns the iterate judged best over 8 fresh predictions.
* ``"bpda-eot"`` -- :class:`~art_ssni.attacks.BPDAEOT` with the PGD-EOT settings (defences with a purifier only).
* ``"score-aware"`` / ``"score-aware-st"`` -- :class:`~art_ssni.attacks.ScoreAwarePGD` (``λ = 1``, linear decay;
  the second also differentiates through a straight-through rounding of ``t``) with the PGD-EOT settings; SSNI
  defences only (DiffPure's noise level does not depend on the input).

The attacks come from the one registry, :mod:`art_ssni.attacks.registry`; each declares what it needs of the
defence. Attacks that do not apply to a defence are skipped and listed as such in the results. Every random
draw of a batch is seeded by :func:`batch_seed` (the run's seed and the batch index), never by the process rank, so
that a sharded run and a single-process run give identical results.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from art.attacks.attack import EvasionAttack

from art_ssni._common import is_finite_real, is_int
from art_ssni.attacks import registry
from art_ssni.attacks.requirements import Requires, meets
from art_ssni.evaluation.robust import batch_seed

__all__ = [
    "ATTACKS",
    "DEFAULT_ITERATIONS",
    "PAPER_STEP_RATIO",
    "THREAT_MODELS",
    "AttackProtocol",
    "batch_seed",
]

#: attack names of the protocol, in the order they run (all of the registry)
ATTACKS = tuple(registry.ATTACKS)

#: iterations of each attack in the standard protocol
DEFAULT_ITERATIONS = {name: 100 if name == "rand-aa" else 200 for name in ATTACKS}

#: the SSNI paper's PGD step (0.007) over its radius (8/255)
PAPER_STEP_RATIO = 0.007 / (8 / 255)

#: RobustBench threat model -> attack norm
THREAT_MODELS: dict[str, str | int] = {"Linf": "inf", "L2": 2}


#: settings that only some attacks use: recorded with those attacks in :meth:`AttackProtocol.describe`
_PER_ATTACK = tuple(sorted({name for entry in registry.ATTACKS.values() for name in entry.own_settings}))


@dataclass(frozen=True)
class AttackProtocol:
    """Settings of a leaderboard evaluation (everything that determines its numbers, apart from the models).

    :param eps: radius of the threat model, > 0 (pixels in ``[0, 1]``; CIFAR-10 ℓ∞: ``8/255``, ℓ2: ``0.5``).
    :param threat_model: ``"Linf"`` or ``"L2"``.
    :param attacks: names among :data:`ATTACKS` (run in that order).
    :param iterations: iterations of every attack; ``None``: :data:`DEFAULT_ITERATIONS` (the standard protocol).
    :param eot: purifications averaged per gradient (EOT), >= 1 (standard: 20).
    :param eps_step: PGD-type step size; ``None``: ``PAPER_STEP_RATIO · eps`` (0.007 at 8/255).
    :param restarts: APGD restarts, >= 1 (AutoAttack rand: 1).
    :param lam: weight λ of the score term of the score-aware attacks, >= 0.
    :param stealth_quantile: reference quantile below which ``score-aware-stealth`` keeps the score norm, in (0, 1).
    :param temperature: softmax temperature (nats) of the ``selective-eot`` copy weights, > 0.
    :param votes: ``K`` of the vote-K protocol, odd, >= 1 (default 9).
    :param redraws: re-judgings of the single protocol, >= 1 (default 5).
    :param resubmit: ``N`` of the resubmit-N protocol, >= 1 (default 10).
    :param select_draws: fresh predictions judging each candidate iterate of the PGD-type attacks, >= 1.
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
    stealth_quantile: float = 0.25
    temperature: float = 0.25
    votes: int = 9
    redraws: int = 5
    resubmit: int = 10
    select_draws: int = 8
    batch_size: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "attacks", tuple(self.attacks))
        self._check_params()

    def _check_params(self) -> None:
        if not is_finite_real(self.eps) or self.eps <= 0:
            raise ValueError(f"eps must be a finite number > 0, got {self.eps!r}.")
        if self.threat_model not in THREAT_MODELS:
            raise ValueError(f"threat_model must be one of {list(THREAT_MODELS)}, got {self.threat_model!r}.")
        if (
            not self.attacks
            or any(a not in ATTACKS for a in self.attacks)
            or len(set(self.attacks)) != len(self.attacks)
        ):
            raise ValueError(f"attacks must be distinct names among {list(ATTACKS)}, got {list(self.attacks)}.")
        if self.iterations is not None and (not is_int(self.iterations) or self.iterations < 1):
            raise ValueError(f"iterations must be an int >= 1 or None, got {self.iterations!r}.")
        if not is_int(self.eot) or self.eot < 1:
            raise ValueError(f"eot must be an int >= 1, got {self.eot!r}.")
        if self.eps_step is not None and (not is_finite_real(self.eps_step) or self.eps_step <= 0):
            raise ValueError(f"eps_step must be a finite number > 0 or None, got {self.eps_step!r}.")
        if not is_int(self.restarts) or self.restarts < 1:
            raise ValueError(f"restarts must be an int >= 1, got {self.restarts!r}.")
        if not is_finite_real(self.lam) or self.lam < 0:
            raise ValueError(f"lam must be a finite number >= 0, got {self.lam!r}.")
        if not is_finite_real(self.stealth_quantile) or not 0 < self.stealth_quantile < 1:
            raise ValueError(f"stealth_quantile must be a number in (0, 1), got {self.stealth_quantile!r}.")
        if not is_finite_real(self.temperature) or self.temperature <= 0:
            raise ValueError(f"temperature must be a finite number > 0, got {self.temperature!r}.")
        if not is_int(self.votes) or self.votes < 1 or self.votes % 2 == 0:
            raise ValueError(f"votes must be an odd int >= 1, got {self.votes!r}.")
        for name in ("redraws", "resubmit", "select_draws", "batch_size"):
            value = getattr(self, name)
            if not is_int(value) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}.")
        if not is_int(self.seed) or self.seed < 0:
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

    def settings(self, attack: str, *, seed: int | None = None) -> registry.AttackSettings:
        """The registry's :class:`~art_ssni.attacks.registry.AttackSettings` of ``attack`` under this protocol."""
        return registry.AttackSettings(
            eps=float(self.eps),
            norm=self.norm,
            eps_step=self.step,
            max_iter=self.iterations_of(attack),
            eot=int(self.eot),
            select_draws=int(self.select_draws),
            restarts=int(self.restarts),
            lam=float(self.lam),
            stealth_quantile=float(self.stealth_quantile),
            temperature=float(self.temperature),
            votes=int(self.votes),
            batch_size=int(self.batch_size),
            seed=seed,
        )

    def applicable(self, met: frozenset[Requires] | set[Requires]) -> tuple[list[str], dict[str, str]]:
        """``(run, skipped)`` attack names for a defence offering ``met`` (see :func:`registry.applicable`)."""
        return registry.applicable(self.attacks, met)

    def describe(self, met: frozenset[Requires] | set[Requires]) -> dict[str, Any]:
        """The concrete settings of every attack that runs (JSON-ready), for the results file."""
        run, skipped = self.applicable(met)
        purified = Requires.PURIFIER in met
        attacks = {
            name: {
                "description": registry.ATTACKS[name].description,
                "iterations": self.iterations_of(name),
                "eot": self.eot if purified else 1,
                **({"restarts": self.restarts, "initial_step": 2.0 * float(self.eps)} if name == "rand-aa" else {}),
                **{k: getattr(self, k) for k in registry.ATTACKS[name].own_settings},
            }
            for name in run
        }
        return {
            **{k: v for k, v in asdict(self).items() if k not in ("attacks", *_PER_ATTACK)},
            "attacks": attacks,
            "skipped_attacks": skipped,
            "norm": str(self.norm),
            "eps_step": self.step,
            "standard": self.is_standard,
            "batch_seeds": "numpy.random.SeedSequence([seed, batch]).generate_state(1, uint32)[0] >> 1",
        }

    def build(self, estimator: Any, *, seed: int) -> dict[str, EvasionAttack]:
        """The attacks to run on ``estimator`` for one batch, seeded ``seed``, as ``{result name: attack}``.

        EOT: with a purifier, the estimator's ``SSNIPreprocessor`` has ``eot_samples = eot`` (one batched call
        averages ``eot`` purifications), so the PGD-type attacks use ``eot_iter = 1``; the straight-through
        score-aware attack, which bypasses ``eot_samples``, uses ``eot_iter = eot`` (see
        :meth:`~art_ssni.attacks.registry.AttackSettings.pgd_kwargs`).
        """
        run, _ = self.applicable(meets(estimator))
        out: dict[str, EvasionAttack] = {}
        for name in run:
            out.update(registry.ATTACKS[name].factory(estimator, self.settings(name, seed=int(seed))))
        return out
