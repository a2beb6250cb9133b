"""What the accuracies of the leaderboard's ``model_info.json`` mean (stored in it under ``definitions``).

The texts follow the code of :func:`art_ssni.leaderboard.merge.merge_records`; the deployment protocols are defined
in docs/evaluation-guide.md.
"""

from __future__ import annotations

__all__ = ["DEFINITIONS"]

#: what the accuracies of ``model_info.json`` mean (the protocols are defined in docs/evaluation-guide.md)
DEFINITIONS = {
    "units": "accuracies are fractions in [0, 1]; each record carries n and a 95 % Wilson interval (ci95)",
    "worst_case": "the attacker's one submission per sample: among the clean input and every attack's output it picks "
    "the one with the highest estimated error under the protocol, on `select_draws` selection draws of its own (a "
    "separate seeded stream); the defence judges that submission with fresh draws",
    "clean_acc": "single protocol: the clean input classified correctly by one fresh prediction (one purification), "
    "mean over `redraws` independent re-judgings",
    "robust_acc": "single protocol, worst case: the attacker's one submission classified correctly by one fresh "
    "prediction, mean over `redraws` re-judgings",
    "autoattack_acc": "the AND over the clean input, APGD-CE and APGD-DLR, one fresh prediction each (RobustBench's "
    "definition for deterministic models; on a randomized defence it is an attacker resubmitting three inputs, so "
    "lower than robust_acc by chance alone)",
    "every_candidate_acc": "the AND of one fresh single verdict over every candidate (an attacker resubmitting every "
    "candidate once; it falls with every extra attack): not the worst case",
    "protocols.single": "per candidate (clean, each attack, worst_case): one fresh prediction, mean over `redraws` "
    "re-judgings, with redraw_std",
    "protocols.resubmit": "robust iff all `resubmit` fresh predictions of the candidate (worst_case: of the "
    "attacker's submission) are correct",
    "protocols.vote": "robust iff the majority over `votes` fresh predictions of the candidate (worst_case: of the "
    "attacker's submission, picked by its estimated vote error) is correct",
    "fixed_randomness": "a diagnostic, not a deployment protocol: PGD at the protocol's iterations with the "
    "purification noise fixed and known to the attacker (EOT 1, exact gradient for that noise), judged with the same "
    "noise (Liu et al.'s deterministic white-box setting): how much of the robustness is randomness",
    "substituted_attacks": "an attack that needs what the defence lacks is replaced by a PGD-EOT restart with its own "
    "seed, reported under the attack's name: every defence faces the same number of attack runs",
}
