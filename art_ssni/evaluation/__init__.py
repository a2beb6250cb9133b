"""Layer 5: evaluation of randomized defences -- robust accuracy with per-sample worst case, one-shot and vote."""

from art_ssni.evaluation.result import RobustAccuracyResult
from art_ssni.evaluation.robust import majority_vote, margins, robust_accuracy

__all__ = ["RobustAccuracyResult", "majority_vote", "margins", "robust_accuracy"]
