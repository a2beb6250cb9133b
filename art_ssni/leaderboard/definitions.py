"""What the accuracies of the leaderboard's ``model_info.json`` mean (stored in it under ``definitions``).

The texts follow the code of :func:`art_ssni.leaderboard.merge.merge_records`; the deployment protocols are defined
in docs/evaluation-guide.md.
"""

from __future__ import annotations

__all__ = ["DEFINITIONS"]

#: what the accuracies of ``model_info.json`` mean (the protocols are defined in docs/evaluation-guide.md)
DEFINITIONS = {
    "units": "accuracies are fractions in [0, 1]; each record carries n and a 95 % Wilson interval (ci95)",
    "clean_acc": "single protocol: the clean input classified correctly by one fresh prediction (one purification), "
    "mean over `redraws` independent re-judgings",
    "robust_acc": "single protocol: the clean input AND every attack's output each classified correctly by one fresh "
    "prediction, mean over `redraws` re-judgings (AutoAttack's robust accuracy over every attack of the protocol)",
    "autoattack_acc": "robust_acc over the clean input, APGD-CE and APGD-DLR only (AutoAttack rand version)",
    "protocols.single": "per candidate (clean, each attack, worst_case = the AND): one fresh prediction, mean over "
    "`redraws` re-judgings, with redraw_std",
    "protocols.resubmit": "robust iff all `resubmit` fresh predictions of the candidate are correct "
    "(worst_case: of the clean input and of every attack's output)",
    "protocols.vote": "robust iff the majority over `votes` fresh predictions is correct (worst_case: for the clean "
    "input and for every attack's output)",
}
