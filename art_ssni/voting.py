"""Prediction-time majority vote over several independent purifications (GNS's ensemble, GDMP's paths).

A randomised purifier gives a different output at every call; Lee & Kim (ICCV 2023) classify each input 10 times
(10 purifications) and take the majority label, and GDMP classifies 10 purification paths. The vote belongs to the
*classifier*, not to the preprocessor's ``forward`` (which must stay a single differentiable purification for
attacks), so it is this small wrapper around any ART classifier whose preprocessing contains the purifier, e.g. a
``PyTorchClassifier(..., preprocessing_defences=[SSNIPreprocessor(...)])``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from art_ssni._common import is_int

__all__ = ["majority_vote", "majority_vote_predict", "vote_counts"]


def vote_counts(predictions: np.ndarray, nb_classes: int) -> np.ndarray:
    """``(N, nb_classes)`` int64 counts of ``(V, N)`` integer predictions (``V`` votes of ``N`` inputs)."""
    preds = np.asarray(predictions)
    if preds.ndim != 2:
        raise ValueError(f"predictions must be a (V, N) array of labels, got shape {preds.shape}.")
    counts = np.zeros((preds.shape[1], int(nb_classes)), dtype=np.int64)
    np.add.at(counts, (np.broadcast_to(np.arange(preds.shape[1]), preds.shape), preds), 1)
    return counts


def majority_vote(predictions: np.ndarray, nb_classes: int) -> np.ndarray:
    """``(N,)`` most frequent label of ``(V, N)`` integer predictions (ties go to the smallest label).

    The one majority vote of the package: the vote-K protocol of :func:`art_ssni.evaluation.robust_accuracy` and
    :func:`majority_vote_predict` both count with :func:`vote_counts`.
    """
    return vote_counts(predictions, nb_classes).argmax(axis=1)


def majority_vote_predict(classifier: Any, x: np.ndarray, *, votes: int = 10, batch_size: int = 128) -> np.ndarray:
    """Classify ``x`` ``votes`` times and return the fraction of votes each class received.

    :param classifier: an ART classifier (anything with ``predict(x, batch_size=...)`` returning ``(N, K)`` scores,
        ``K >= 2``) whose preprocessing defences purify ``x`` afresh at every call.
    :param x: ``(N, ...)`` inputs as the classifier expects them (never modified).
    :param votes: number of independent purifications and predictions, ``>= 1`` (Lee & Kim: 10).
    :param batch_size: passed to ``classifier.predict``.
    :return: ``(N, K)`` float32 vote fractions (each row sums to 1). ``argmax(axis=1)`` is the majority label;
        a tie goes to the smallest class index among the tied classes.
    """
    if not hasattr(classifier, "predict") or not callable(classifier.predict):
        raise TypeError(f"classifier must have a predict method (an ART classifier), got {type(classifier).__name__}.")
    if not is_int(votes) or votes < 1:
        raise ValueError(f"votes must be an int >= 1, got {votes!r}.")
    if not is_int(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}.")
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x must be a numpy array, got {type(x).__name__}.")
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty batch (N, ...), got shape {x.shape}.")
    labels = []
    shape: tuple[int, ...] | None = None
    for _ in range(int(votes)):
        scores = np.asarray(classifier.predict(x, batch_size=int(batch_size)))
        if scores.ndim != 2 or scores.shape[0] != x.shape[0] or scores.shape[1] < 2:
            raise ValueError(
                f"classifier.predict must return (N, K) scores with N = {x.shape[0]} and K >= 2, got {scores.shape}."
            )
        if shape is not None and scores.shape != shape:
            raise ValueError(f"classifier.predict changed its output shape from {shape} to {scores.shape}.")
        shape = scores.shape
        labels.append(scores.argmax(axis=1))
    assert shape is not None
    return (vote_counts(np.stack(labels), shape[1]) / float(votes)).astype(np.float32)
