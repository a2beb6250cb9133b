"""The one selection criterion of our attacks: which iterate each sample returns, judged over fresh predictions.

A randomized defence answers differently at every call, so one prediction cannot tell whether an iterate fools it
(issue 16: freezing a sample on one lucky draw left 81.5 % accuracy where running to the end leaves 61.2 %). Every
attack in :mod:`art_ssni.attacks` therefore judges its candidate iterates with :func:`judge` -- ``draws`` fresh
predictions of each candidate, in ONE batched ``predict`` call on repeated rows -- and keeps, per sample, the
candidate that :class:`BestIterate` ranks highest:

(1) the highest *success rate* (untargeted: the share of draws that are misclassified; targeted: the share that
    predict the target);
(2) ties go to the higher *EOT loss*, the mean over the same draws of the margin loss
    ``max_{k != y} s_k - s_y`` (targeted: ``s_t - max_{k != t} s_k``) of the predicted scores ``s``;
(3) remaining ties keep the earlier candidate.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["BestIterate", "judge", "margin_loss"]


def margin_loss(scores: np.ndarray, labels: np.ndarray, *, targeted: bool = False) -> np.ndarray:
    """Margin loss the attacker maximises, per row.

    :param scores: ``(R, K)`` predicted scores (logits or probabilities).
    :param labels: ``(R,)`` true labels (untargeted) or target labels (targeted).
    :param targeted: ``False``: ``max_{k != y} s_k - s_y``; ``True``: ``s_t - max_{k != t} s_k``.
    :return: ``(R,)`` float64; > 0 means the row is a success for the attacker.
    """
    rows = np.arange(labels.shape[0])
    scores = np.asarray(scores, dtype=np.float64)
    own = scores[rows, labels]
    others = scores.copy()
    others[rows, labels] = -np.inf
    best_other = others.max(axis=1)
    return own - best_other if targeted else best_other - own


def judge(
    estimator: Any, x: np.ndarray, labels: np.ndarray, *, draws: int, batch_size: int, targeted: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Success rate and EOT margin loss of each sample of ``x`` over ``draws`` fresh predictions.

    The rows are repeated ``draws`` times and predicted in ONE ``estimator.predict`` call (a randomized defence
    purifies every row with its own randomness, so the copies are independent draws; an SSNI defence batches
    them through one UNet call per chunk).

    :param estimator: an ART classifier (``predict(x, batch_size=...)`` -> ``(R, K)`` scores).
    :param x: ``(B, C, H, W)`` candidates.
    :param labels: ``(B,)`` true labels (targeted: target labels).
    :param draws: fresh predictions per sample, >= 1.
    :param batch_size: the attack's batch size; the call uses ``batch_size * draws`` rows per predict batch.
    :param targeted: success = predicting the target instead of missing the label.
    :return: ``rate`` ``(B,)`` in ``[0, 1]`` and ``loss`` ``(B,)``: the mean margin loss over the draws.
    """
    b = x.shape[0]
    rep = np.repeat(x, draws, axis=0)  # sample-major: rows i*draws ... (i+1)*draws-1 are sample i
    scores = np.asarray(estimator.predict(rep, batch_size=int(batch_size) * int(draws)))
    lab = np.repeat(labels, draws)
    pred = scores.argmax(axis=1)
    success = (pred == lab) if targeted else (pred != lab)
    loss = margin_loss(scores, lab, targeted=targeted)
    return success.reshape(b, draws).mean(axis=1), loss.reshape(b, draws).mean(axis=1)


class BestIterate:
    """Per-sample best candidate under the selection criterion of this module.

    Shape:
        - ``x``: ``(B, C, H, W)``; ``rate``, ``loss``: ``(B,)``.

    Examples::

        >>> best = BestIterate(x_start)
        >>> best.offer(x_adv, *judge(clf, x_adv, labels, draws=8, batch_size=32))
        >>> x_out = best.x
    """

    def __init__(self, x: np.ndarray) -> None:
        self.x = np.array(x, copy=True)
        self.rate = np.full(x.shape[0], -np.inf)
        self.loss = np.full(x.shape[0], -np.inf)

    def offer(self, x: np.ndarray, rate: np.ndarray, loss: np.ndarray) -> np.ndarray:
        """Keep ``x[i]`` where it beats the current best (higher rate, ties to higher loss); return that mask."""
        better = (rate > self.rate) | ((rate == self.rate) & (loss > self.loss))
        self.x[better] = x[better]
        self.rate[better] = rate[better]
        self.loss[better] = loss[better]
        return better
