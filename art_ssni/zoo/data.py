"""The digits data of the zoo: scikit-learn's bundled ``load_digits`` (no download) and its fixed split."""

from __future__ import annotations

import numpy as np

__all__ = ["DIGITS_TEST_SIZE", "load_digits_split"]

DIGITS_TEST_SIZE = 0.25


def load_digits_split(
    seed: int = 0, test_size: float = DIGITS_TEST_SIZE
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 ``8 x 8`` grey digits, scaled to ``[0, 1]`` and split into train / test.

    The split is ``sklearn.model_selection.train_test_split(test_size=test_size, random_state=seed,
    stratify=y)``; with the defaults (the zoo's split) it has 1,347 training and 450 test images.
    Pixel values ``0..16`` are divided by 16.

    :param seed: ``random_state`` of the split.
    :param test_size: fraction of the images in the test split, in ``(0, 1)``.
    :return: ``(x_train, y_train, x_test, y_test)``: images as new float32 ``(N, 1, 8, 8)`` arrays in ``[0, 1]``,
        labels as int64 ``(N,)`` arrays in ``0..9``.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}.")
    if isinstance(test_size, bool) or not isinstance(test_size, (int, float)) or not 0.0 < float(test_size) < 1.0:
        raise ValueError(f"test_size must be a float in (0, 1), got {test_size!r}.")
    digits = load_digits()
    x = (np.asarray(digits.data, dtype=np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = np.asarray(digits.target, dtype=np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=float(test_size), random_state=int(seed), stratify=y
    )
    return (
        np.ascontiguousarray(x_train),
        np.ascontiguousarray(y_train),
        np.ascontiguousarray(x_test),
        np.ascontiguousarray(y_test),
    )
