"""Layer 5: evaluation of randomized defences -- robust accuracy under three deployment protocols, with intervals."""

from art_ssni.evaluation.result import PROTOCOLS, RobustAccuracyResult
from art_ssni.evaluation.robust import batch_seed, judge_submissions, margins, robust_accuracy
from art_ssni.evaluation.run import evaluate
from art_ssni.evaluation.stats import accuracy_record, mcnemar_p, wilson_interval

__all__ = [
    "PROTOCOLS",
    "RobustAccuracyResult",
    "accuracy_record",
    "batch_seed",
    "evaluate",
    "judge_submissions",
    "margins",
    "mcnemar_p",
    "robust_accuracy",
    "wilson_interval",
]
