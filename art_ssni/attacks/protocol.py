"""The one attack protocol: every setting that decides an evaluation's numbers, validated once, frozen.

:class:`AttackProtocol` is built once (by the command line, or by the user) and passed as ``protocol=`` to
:func:`~art_ssni.evaluation.evaluate`, :func:`~art_ssni.evaluation.compare.compare_defences`,
:func:`~art_ssni.leaderboard.run_leaderboard`, :func:`~art_ssni.leaderboard.leaderboard`,
:func:`~art_ssni.leaderboard.frontier.frontier` and the study scripts. It holds

* the threat model: ``threat_model`` (``"Linf"`` / ``"L2"``; ``np.inf``, ``"inf"``, ``2`` and ``"2"`` are the same
  thing) and ``eps``;
* the attacks (names of the one registry, :mod:`art_ssni.attacks.registry`) and their budget: ``iterations``,
  ``eot``, ``eps_step`` (``None``: the one default rule :func:`~art_ssni.attacks._common.default_step`, for every
  attack name alike), ``select_draws`` (the attacker's own draws judging iterates and, at the end, picking its one
  submission per sample), ``restarts`` and the attack weights ``lam``, ``stealth_quantile``, ``temperature``;
* the deployment protocols that judge the submission: ``redraws`` (single), ``resubmit`` (resubmit-N), ``votes``
  (vote-K);
* ``batch_size`` and ``seed``.

:data:`BUDGETS` are the named presets (the one place where budgets are declared); :meth:`AttackProtocol.from_budget`
builds one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import Any

from art_ssni._common import is_finite_real, is_int
from art_ssni.attacks._common import PAPER_STEP_RATIO, default_step, threat_model_name

__all__ = ["BUDGETS", "PAPER_STEP_RATIO", "THREAT_MODELS", "AttackProtocol", "threat_model_name"]

#: RobustBench threat model -> attack norm
THREAT_MODELS: dict[str, str | int] = {"Linf": "inf", "L2": 2}

#: named budgets, the one place they are declared. ``evaluate``: ``art-ssni evaluate``'s (minutes on a CPU; far
#: below the plateau); ``quick``: a set-up check; ``strong``: the plateau of the convergence study (docs/attacks.md:
#: EOT 16, where the EOT curves stop falling; 20 iterations); ``paper``: the SSNI paper's (PGD 200, EOT 20).
BUDGETS: dict[str, dict[str, int]] = {
    "evaluate": {
        "iterations": 10,
        "eot": 4,
        "select_draws": 8,
        "select_every": 5,
        "votes": 9,
        "redraws": 5,
        "resubmit": 10,
    },
    "quick": {"iterations": 10, "eot": 4, "select_draws": 4, "votes": 5, "redraws": 3, "resubmit": 5},
    "strong": {"iterations": 20, "eot": 16, "select_draws": 8, "votes": 9, "redraws": 5, "resubmit": 10},
    "paper": {"iterations": 200, "eot": 20, "select_draws": 8, "votes": 9, "redraws": 5, "resubmit": 10},
}

#: iterations of each attack when ``iterations`` is ``None`` (the leaderboard's standard protocol)
_STANDARD_ITERATIONS = {"rand-aa": 100}
_STANDARD_DEFAULT = 200


@dataclass(frozen=True)
class AttackProtocol:
    """Settings of one evaluation: threat model, attacks, budget, selection and judging (module docstring).

    :param eps: radius of the threat model, > 0 (pixels in ``[0, 1]``; CIFAR-10 ℓ∞: ``8/255``, ℓ2: ``0.5``).
    :param threat_model: ``"Linf"`` or ``"L2"`` (also ``np.inf``, ``"inf"``, ``2``); stored as ``"Linf"`` / ``"L2"``.
    :param attacks: distinct names of the attack registry, run in that order.
    :param iterations: iterations of every attack; ``None``: the standard protocol's (APGD 100, the others 200).
    :param eot: purifications averaged per gradient (EOT), >= 1.
    :param eps_step: step of the PGD-type attacks; ``None``: ``eps · max(0.223, 2.5 / iterations)`` for every attack
        (:func:`~art_ssni.attacks._common.default_step`). An explicit step whose ``iterations · eps_step`` cannot
        reach ``eps`` is accepted (it is the user's choice) and recorded; the default always reaches it.
    :param select_draws: the attacker's fresh predictions judging each candidate (iterates, then its one
        submission per sample), >= 1.
    :param select_every: iterations between the PGD-type attacks' judgings; ``None``: at most 10 per restart.
    :param restarts: APGD restarts, >= 1.
    :param lam: weight λ of the score term of the score-aware attacks, >= 0.
    :param stealth_quantile: reference quantile below which ``score-aware-stealth`` keeps the score norm, in (0, 1).
    :param temperature: softmax temperature (nats) of the ``selective-eot`` copy weights, > 0.
    :param votes: ``K`` of the vote-K protocol, odd, >= 1.
    :param redraws: re-judgings of the single protocol, >= 1.
    :param resubmit: ``N`` of the resubmit-N protocol, >= 1.
    :param batch_size: examples per batch (attacks, seeds; the unit of sharding and resuming), >= 1.
    :param seed: seed of the run, >= 0 (each batch derives its own with ``batch_seed``).
    :param verbose: the attacks' progress bars.
    """

    eps: float
    threat_model: str = "Linf"
    attacks: tuple[str, ...] = ("rand-aa", "pgd-eot")
    iterations: int | None = None
    eot: int = 20
    eps_step: float | None = None
    select_draws: int = 8
    select_every: int | None = None
    restarts: int = 1
    lam: float = 1.0
    stealth_quantile: float = 0.25
    temperature: float = 0.25
    votes: int = 9
    redraws: int = 5
    resubmit: int = 10
    batch_size: int = 32
    seed: int = 0
    verbose: bool = False

    def __post_init__(self) -> None:
        name = threat_model_name(self.threat_model)
        if name is None:
            raise ValueError(f"threat_model must be 'Linf' (np.inf, 'inf') or 'L2' (2), got {self.threat_model!r}.")
        object.__setattr__(self, "threat_model", name)
        if isinstance(self.attacks, str):
            raise TypeError(f"attacks must be a sequence of attack names, got the string {self.attacks!r}.")
        object.__setattr__(self, "attacks", tuple(self.attacks))
        self._check_params()

    def _check_params(self) -> None:
        from art_ssni.attacks.registry import ATTACKS  # the registry builds attacks from a protocol

        if not is_finite_real(self.eps) or self.eps <= 0:
            raise ValueError(f"eps must be a finite number > 0, got {self.eps!r}.")
        if (
            not self.attacks
            or any(a not in ATTACKS for a in self.attacks)
            or len(set(self.attacks)) != len(self.attacks)
        ):
            raise ValueError(f"attacks must be distinct names among {list(ATTACKS)}, got {list(self.attacks)}.")
        if self.iterations is not None and (not is_int(self.iterations) or self.iterations < 1):
            raise ValueError(f"iterations must be an int >= 1 or None, got {self.iterations!r}.")
        if self.eps_step is not None and (not is_finite_real(self.eps_step) or self.eps_step <= 0):
            raise ValueError(f"eps_step must be a finite number > 0 or None, got {self.eps_step!r}.")
        if self.select_every is not None and (not is_int(self.select_every) or self.select_every < 1):
            raise ValueError(f"select_every must be an int >= 1 or None, got {self.select_every!r}.")
        if not is_finite_real(self.lam) or self.lam < 0:
            raise ValueError(f"lam must be a finite number >= 0, got {self.lam!r}.")
        if not is_finite_real(self.stealth_quantile) or not 0 < self.stealth_quantile < 1:
            raise ValueError(f"stealth_quantile must be a number in (0, 1), got {self.stealth_quantile!r}.")
        if not is_finite_real(self.temperature) or self.temperature <= 0:
            raise ValueError(f"temperature must be a finite number > 0, got {self.temperature!r}.")
        if not is_int(self.votes) or self.votes < 1 or self.votes % 2 == 0:
            raise ValueError(f"votes must be an odd int >= 1, got {self.votes!r}.")
        for name in ("eot", "restarts", "redraws", "resubmit", "select_draws", "batch_size"):
            value = getattr(self, name)
            if not is_int(value) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}.")
        if not is_int(self.seed) or self.seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {self.seed!r}.")
        if not isinstance(self.verbose, bool):
            raise ValueError(f"verbose must be a bool, got {self.verbose!r}.")

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_budget(cls, budget: str, *, eps: float, **overrides: Any) -> AttackProtocol:
        """The protocol of the named budget (:data:`BUDGETS`) at radius ``eps``; ``overrides`` (not ``None``) win."""
        if budget not in BUDGETS:
            raise ValueError(f"budget must be one of {list(BUDGETS)}, got {budget!r}.")
        settings = {**BUDGETS[budget], **{k: v for k, v in overrides.items() if v is not None}}
        return cls(eps=eps, **settings)

    def replace(self, **changes: Any) -> AttackProtocol:
        """A validated copy with ``changes``."""
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ derived settings
    @property
    def norm(self) -> str | int:
        """The attack norm: ``"inf"`` or ``2``."""
        return THREAT_MODELS[self.threat_model]

    def iterations_of(self, attack: str) -> int:
        """Iterations of ``attack`` under this protocol."""
        if self.iterations is not None:
            return int(self.iterations)
        return _STANDARD_ITERATIONS.get(attack, _STANDARD_DEFAULT)

    def step_of(self, attack: str) -> float:
        """The PGD-type step of ``attack``: ``eps_step``, or the one default rule at its iterations."""
        if self.eps_step is not None:
            return float(self.eps_step)
        return default_step(float(self.eps), self.iterations_of(attack))

    @property
    def step(self) -> float:
        """The PGD-type step of ``pgd-eot`` (the step of every PGD-type attack when the iterations are shared)."""
        return self.step_of("pgd-eot")

    @property
    def reaches_eps(self) -> bool:
        """``True`` when ``iterations · step >= eps`` for every PGD-type attack of the protocol."""
        return all(self.iterations_of(a) * self.step_of(a) >= float(self.eps) * (1 - 1e-9) for a in self.attacks)

    @property
    def is_standard(self) -> bool:
        """``True`` when iterations, EOT and restarts are those of the standard protocol."""
        return self.iterations is None and self.eot == 20 and self.restarts == 1

    def for_attack(self, attack: str, *, seed: int | None = None) -> AttackProtocol:
        """This protocol with ``attack``'s iterations and step resolved (and ``seed`` for the attack's own draws)."""
        return self.replace(
            iterations=self.iterations_of(attack),
            eps_step=self.step_of(attack),
            seed=int(self.seed if seed is None else seed),
        )

    def pgd_kwargs(self, estimator: Any, *, through_defence: bool = True) -> dict[str, Any]:
        """Keyword arguments of :class:`~art_ssni.attacks.PGDEOT` and its subclasses for ``estimator``.

        Call it on :meth:`for_attack`'s result. ``eot_iter`` is ``ceil(eot / M)`` where the defence's
        ``eot_samples = M`` already averages ``M`` purifications per gradient call (``through_defence=False``: an
        attack that bypasses ``eot_samples``); a classifier without a purifier gets ``eot_iter = 1``.
        """
        from art_ssni.attacks._common import find_preprocessor

        pre = find_preprocessor(estimator, required=False)
        per_call = int(getattr(pre, "eot_samples", 1)) if (pre is not None and through_defence) else 1
        eot = int(self.eot) if pre is not None else 1  # a deterministic classifier: EOT repeats one gradient
        iterations = self.iterations_of("pgd-eot")
        return dict(
            norm=self.norm,
            eps=float(self.eps),
            eps_step=self.step_of("pgd-eot"),
            max_iter=int(iterations),
            eot_iter=max(1, -(-eot // per_call)),
            num_random_init=0,
            select_draws=int(self.select_draws),
            select_every=self.select_every,
            batch_size=int(self.batch_size),
            seed=int(self.seed),
            verbose=bool(self.verbose),
        )

    def applicable(self, met: Any) -> tuple[list[str], dict[str, str]]:
        """``(run, skipped)`` attack names for a defence offering ``met``
        (:func:`~art_ssni.attacks.registry.applicable`); :meth:`build` puts a PGD-EOT restart in each skipped one's
        place."""
        from art_ssni.attacks.registry import applicable

        return applicable(self.attacks, met, threat_model=self.threat_model)

    def build(self, estimator: Any, *, seed: int | None = None) -> dict[str, Any]:
        """The attacks on ``estimator`` as ``{result name: attack}`` (:func:`~art_ssni.attacks.registry.build`:
        a PGD-EOT restart stands in for each attack that does not apply), seeded ``seed`` (``None``: ``self.seed``).

        EOT: with a purifier whose ``eot_samples = M``, one gradient call averages ``M`` purifications and the
        PGD-type attacks use ``eot_iter = ceil(eot / M)``.
        """
        from art_ssni.attacks.registry import build

        return build(self.attacks, estimator, self if seed is None else self.replace(seed=int(seed)))

    def describe(self, met: Any) -> dict[str, Any]:
        """The concrete settings of every attack run on a defence offering ``met`` (JSON-ready, for results files).

        ``attacks`` maps every name of :attr:`attacks` to its settings; a name whose attack does not apply has
        ``"substitute"`` (the PGD-EOT restart in its place); ``skipped_attacks`` gives the reasons.
        """
        from art_ssni.attacks.registry import ATTACKS, applicable, substitutes
        from art_ssni.attacks.requirements import Requires

        run, skipped = applicable(self.attacks, met, threat_model=self.threat_model)
        stand_ins = substitutes(self.attacks, met, self)
        purified = Requires.PURIFIER in met
        attacks: dict[str, Any] = {}
        for name in self.attacks:
            used = name if name in run else "pgd-eot"
            attacks[name] = {
                "description": ATTACKS[used].description,
                "iterations": self.iterations_of(used),
                "eps_step": None if used == "rand-aa" else self.step_of(used),
                "eot": self.eot if purified else 1,
                **({"restarts": self.restarts, "initial_step": 2.0 * float(self.eps)} if used == "rand-aa" else {}),
                **{k: getattr(self, k) for k in ATTACKS[used].own_settings},
                **({"substitute": stand_ins[name]} if name in stand_ins else {}),
            }
        per_attack = {k for entry in ATTACKS.values() for k in entry.own_settings}
        return {
            **{k: v for k, v in self.to_dict().items() if k not in ("attacks", *per_attack)},
            "attacks": attacks,
            "skipped_attacks": skipped,
            "substituted_attacks": stand_ins,
            "standard": self.is_standard,
            "batch_seeds": "numpy.random.SeedSequence([seed, batch]).generate_state(1, uint32)[0] >> 1",
        }

    def judging(self) -> dict[str, int]:
        """The keyword arguments of :func:`~art_ssni.evaluation.robust_accuracy` / ``judge_submissions`` that this
        protocol sets: ``votes``, ``redraws``, ``resubmit``, ``select_draws``, ``seed``."""
        return {
            "votes": int(self.votes),
            "redraws": int(self.redraws),
            "resubmit": int(self.resubmit),
            "select_draws": int(self.select_draws),
            "seed": int(self.seed),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings, with the step in use and whether the budget reaches ``eps``."""
        return {
            **asdict(self),
            "attacks": list(self.attacks),
            "norm": str(self.norm),
            "eps_step": self.step,
            "eps_step_given": self.eps_step is not None,
            "reaches_eps": self.reaches_eps,
        }
