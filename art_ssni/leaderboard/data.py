"""Evaluation data of the leaderboard, read from local files only (never a download).

* CIFAR-10 from a local folder: the standard python batches (``cifar-10-batches-py/test_batch``, read with a
  restricted unpickler that only rebuilds dicts, lists, bytes, ints and numpy arrays -- no arbitrary objects),
  the binary batches (``cifar-10-batches-bin/test_batch.bin``), or an ``.npz`` file with ``x_test`` / ``y_test``
  (and optionally ``x_train``).
* ``digits`` from the shipped zoo (:func:`art_ssni.zoo.load`).

Like RobustBench's ``load_cifar10``, the evaluation set is the *first* ``n_ex`` test images in file order.
Images are returned as float32 ``(N, C, H, W)`` arrays in ``[0, 1]`` and labels as int64 ``(N,)`` arrays.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DATASETS", "load_cifar10", "load_cifar10_train"]

#: data sets the leaderboard knows: name -> (nb_classes, image shape (C, H, W))
DATASETS: dict[str, tuple[int, tuple[int, int, int]]] = {
    "cifar10": (10, (3, 32, 32)),
    "digits": (10, (1, 8, 8)),
}

_CIFAR_ROWS = 3 * 32 * 32
_TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds numpy arrays (plus the built-in containers pickle handles natively).

    The CIFAR-10 python batches are pickled dicts of bytes, lists of ints and one uint8 ``ndarray``; nothing else
    may be constructed, so a malicious file cannot run code.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR-10 batch (only numpy arrays).")


def _read_python_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    data = _ArrayUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    if not isinstance(data, dict):
        raise ValueError(f"{str(path)!r}: not a CIFAR-10 python batch (expected a dict).")
    keys = {k.decode() if isinstance(k, bytes) else k: v for k, v in data.items()}
    if "data" not in keys or "labels" not in keys:
        raise ValueError(f"{str(path)!r}: not a CIFAR-10 python batch (needs 'data' and 'labels').")
    x = np.asarray(keys["data"], dtype=np.uint8)
    y = np.asarray(keys["labels"], dtype=np.int64)
    if x.ndim != 2 or x.shape[1] != _CIFAR_ROWS or x.shape[0] != y.shape[0]:
        raise ValueError(f"{str(path)!r}: expected data (N, 3072) and N labels, got {x.shape} and {y.shape}.")
    return x.reshape(-1, 3, 32, 32), y


def _read_binary_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % (_CIFAR_ROWS + 1):
        raise ValueError(f"{str(path)!r}: size {raw.size} is not a multiple of 3073 (CIFAR-10 binary rows).")
    rows = raw.reshape(-1, _CIFAR_ROWS + 1)
    return rows[:, 1:].reshape(-1, 3, 32, 32), rows[:, 0].astype(np.int64)


def _to_float(x: np.ndarray, name: str) -> np.ndarray:
    """uint8 (0..255) or float (0..1) images, NCHW or NHWC, as new float32 NCHW in [0, 1]."""
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"{name} must be a 4-d image array, got shape {x.shape}.")
    if x.shape[1] not in (1, 3) and x.shape[-1] in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x, dtype=np.float32) / 255.0
    out = np.array(x, dtype=np.float32, copy=True)
    if out.size and (out.min() < 0.0 or out.max() > 1.0):
        raise ValueError(f"{name}: float images must lie in [0, 1], got [{out.min()}, {out.max()}].")
    return out


def _locate(data_dir: str | os.PathLike[str]) -> Path:
    root = Path(data_dir)
    if not root.exists():
        raise FileNotFoundError(f"data_dir: {str(root)!r} does not exist (a CIFAR-10 folder or .npz file).")
    return root


def load_cifar10(data_dir: str | os.PathLike[str], n_ex: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n_ex`` CIFAR-10 *test* images from local files.

    :param data_dir: a ``.npz`` file (``x_test``, ``y_test``; uint8 0..255 or float 0..1, NCHW or NHWC) or a
        folder holding ``test_batch`` / ``test_batch.bin`` directly or in ``cifar-10-batches-py/`` /
        ``cifar-10-batches-bin/`` (the archives of https://www.cs.toronto.edu/~kriz/cifar.html, extracted).
    :param n_ex: number of images (``None``: all).
    :return: ``x`` float32 ``(n_ex, 3, 32, 32)`` in ``[0, 1]``, ``y`` int64 ``(n_ex,)``.
    :raises FileNotFoundError: naming every place that was looked at.
    """
    return _load(data_dir, n_ex, train=False)


def load_cifar10_train(data_dir: str | os.PathLike[str], n: int | None = None) -> np.ndarray:
    """The first ``n`` CIFAR-10 *training* images (for SSNI's reference statistics): float32 ``(n, 3, 32, 32)``."""
    return _load(data_dir, n, train=True)[0]


def _load(data_dir: str | os.PathLike[str], n: int | None, *, train: bool) -> tuple[np.ndarray, np.ndarray]:
    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1):
        raise ValueError(f"n_ex must be an int >= 1 or None, got {n!r}.")
    root = _locate(data_dir)
    split = "train" if train else "test"
    if root.is_file():
        with np.load(root, allow_pickle=False) as data:
            key_x = "x_train" if train else "x_test"
            if key_x not in data:
                raise ValueError(f"{str(root)!r}: array {key_x!r} not found (has {sorted(data.keys())}).")
            x = _to_float(data[key_x][:n], f"{root}:{key_x}")
            if train:
                return x, np.zeros(len(x), dtype=np.int64)  # labels unused: reference statistics are unsupervised
            if "y_test" not in data:
                raise ValueError(f"{str(root)!r}: array 'y_test' not found (has {sorted(data.keys())}).")
            y = np.asarray(data["y_test"][:n], dtype=np.int64)
        if len(y) != len(x):
            raise ValueError(f"{str(root)!r}: {len(x)} images but {len(y)} labels.")
        return x, y
    py_dirs = [root, root / "cifar-10-batches-py"]
    bin_dirs = [root, root / "cifar-10-batches-bin"]
    names = _TRAIN_BATCHES if train else ["test_batch"]
    looked: list[str] = []
    for reader, dirs, suffix in ((_read_python_batch, py_dirs, ""), (_read_binary_batch, bin_dirs, ".bin")):
        for folder in dirs:
            files = [folder / (name + suffix) for name in names]
            looked.append(str(files[0]))
            if not files[0].is_file():
                continue
            xs, ys, count = [], [], 0
            for file in files:
                if not file.is_file() or (n is not None and count >= n):
                    break
                xb, yb = reader(file)
                xs.append(xb)
                ys.append(yb)
                count += len(xb)
            x, y = np.concatenate(xs)[:n], np.concatenate(ys)[:n]
            return _to_float(x, split), np.ascontiguousarray(y)
    raise FileNotFoundError(f"data_dir: no CIFAR-10 {split} batch found; looked for {looked}.")
