"""Layer 6: the leaderboard runner for randomized defences -- a fixed protocol, sharded, resumable.

* :class:`AttackProtocol` / :mod:`~art_ssni.leaderboard.protocol` -- AutoAttack's rand version (APGD-CE + APGD-DLR with
  EOT), PGD-EOT, BPDA-EOT and the score-aware attacks, with fixed per-batch seeds.
* :func:`run_leaderboard` / :mod:`~art_ssni.leaderboard.runner` -- evaluate modules and arrays; one process or
  ``torchrun --nproc_per_node=N`` (each rank a disjoint shard of batches, rank 0 merges); resumable.
* :func:`leaderboard` / :mod:`~art_ssni.leaderboard.api` -- the same by names (``art-ssni leaderboard``): the
  digits zoo, or a RobustBench CIFAR-10 model and a local diffusers folder.
* :mod:`~art_ssni.leaderboard.data` -- CIFAR-10 from local files (no download); :mod:`~art_ssni.leaderboard.store`
  -- the output folder (atomic files); :mod:`~art_ssni.leaderboard.distributed` -- the process group.

See ``docs/robustbench.md``.
"""

from art_ssni.leaderboard.api import DEFAULT_EPS, leaderboard, parse_eps
from art_ssni.leaderboard.data import DATASETS, load_cifar10, load_cifar10_train
from art_ssni.leaderboard.protocol import ATTACKS, DEFAULT_ITERATIONS, AttackProtocol, batch_seed
from art_ssni.leaderboard.runner import DEFINITIONS, merge_records, run_leaderboard
from art_ssni.leaderboard.store import ResultStore

__all__ = [
    "ATTACKS",
    "DATASETS",
    "DEFAULT_EPS",
    "DEFAULT_ITERATIONS",
    "DEFINITIONS",
    "AttackProtocol",
    "ResultStore",
    "batch_seed",
    "leaderboard",
    "load_cifar10",
    "load_cifar10_train",
    "merge_records",
    "parse_eps",
    "run_leaderboard",
]
