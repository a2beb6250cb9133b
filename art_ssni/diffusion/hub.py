"""Where a diffusion model's files are: a local folder, or a Hugging Face Hub repo id resolved into the Hub cache.

:func:`resolve` turns ``name_or_path`` into a local folder that :meth:`~art_ssni.DiffusionModel.from_pretrained`
reads. A folder that exists is used as it is. Anything else must be a Hub repo id (``"google/ddpm-cifar10-32"``):
it is fetched with :func:`huggingface_hub.snapshot_download`, so the Hub's own cache (``HF_HUB_CACHE`` or
``cache_dir``), offline mode (``HF_HUB_OFFLINE=1`` or ``local_files_only=True``) and revision pinning (a branch,
tag or commit hash) behave as everywhere else in the ecosystem. Only JSON configs and safetensors weights are
fetched, never pickle files.

Before a folder is handed on, :func:`check_model_files` checks the files the loader will read: each a regular file
(not a device such as ``/dev/zero``), each config a JSON object whose schedule and UNet values make sense
(``ValueError`` naming the file and the field, instead of a failure far away at the first purification).

Layer 1: pure Python + huggingface_hub (a dependency of diffusers); no ART, no environment variables read here
(huggingface_hub reads its own).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = ["PICKLE_SUFFIXES", "UNET_WEIGHTS", "check_model_files", "num_train_timesteps", "resolve"]

#: the UNet's weights file name inside a diffusers folder (safetensors)
UNET_WEIGHTS = "diffusion_pytorch_model.safetensors"
#: file suffixes of pickle-based weights, which are never loaded (unpickling can run code)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
#: what is fetched from a repo (fnmatch patterns, ``*`` crosses folders): JSON configs and the UNet's full-precision
#: safetensors, at the root (bare UNet repo), under ``unet/`` + ``scheduler/`` (pipeline repo) or deeper (a saved
#: :class:`~art_ssni.SSNIPreprocessor`: ``ssni_config.json`` + ``diffusion/unet/...``); never pickle files
_PATTERNS = ("*.json", "*" + UNET_WEIGHTS)


#: beta schedules of diffusers' DDPM / DDIM schedulers
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid")


def _int_at_least(low: int) -> tuple[Any, str]:
    return (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low), f"an int >= {low}"


def _number_in(lo: float, hi: float) -> tuple[Any, str]:
    def ok(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and lo < v < hi

    return ok, f"a number in ({lo:g}, {hi:g})"


def _size(v: Any) -> bool:
    if isinstance(v, list):
        return len(v) == 2 and all(_int_at_least(1)[0](s) for s in v)
    return v is None or _int_at_least(1)[0](v)


#: field -> (check, what it must be) of a UNet config.json (fields absent: diffusers' defaults)
UNET_FIELDS: dict[str, tuple[Any, str]] = {
    "in_channels": _int_at_least(1),
    "out_channels": _int_at_least(1),
    "sample_size": (_size, "null, an int >= 1 or a list of two"),
    "layers_per_block": _int_at_least(1),
    "norm_num_groups": ((lambda v: v is None or _int_at_least(1)[0](v)), "null or an int >= 1"),
    "norm_eps": _number_in(0.0, 1.0),
    "block_out_channels": (
        (lambda v: isinstance(v, list) and len(v) > 0 and all(_int_at_least(1)[0](c) for c in v)),
        "a non-empty list of ints >= 1",
    ),
    "down_block_types": ((lambda v: isinstance(v, list) and all(isinstance(b, str) for b in v)), "a list of names"),
    "up_block_types": ((lambda v: isinstance(v, list) and all(isinstance(b, str) for b in v)), "a list of names"),
}
#: field -> (check, what it must be) of a scheduler_config.json
SCHEDULER_FIELDS: dict[str, tuple[Any, str]] = {
    "num_train_timesteps": _int_at_least(2),
    "beta_start": _number_in(0.0, 1.0),
    "beta_end": _number_in(0.0, 1.0),
    "beta_schedule": ((lambda v: v in BETA_SCHEDULES), f"one of {list(BETA_SCHEDULES)}"),
    "trained_betas": (
        (lambda v: v is None or (isinstance(v, list) and len(v) > 1 and all(_number_in(0.0, 1.0)[0](b) for b in v))),
        "null or a list of numbers in (0, 1)",
    ),
    "prediction_type": ((lambda v: isinstance(v, str)), "a string"),
}


def _regular(file: Path) -> None:
    if (file.exists() or file.is_symlink()) and not file.resolve().is_file():
        raise ValueError(f"name_or_path: {str(file)!r} is not a regular file (a device, FIFO or folder); refused.")


def _check_fields(file: Path, fields: dict[str, tuple[Any, str]]) -> dict[str, Any]:
    try:
        config = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise ValueError(f"name_or_path: {str(file)!r} is not valid JSON ({err}).") from err
    if not isinstance(config, dict):
        raise ValueError(f"name_or_path: {str(file)!r} must hold a JSON object, got {type(config).__name__}.")
    for name, (ok, what) in fields.items():
        if name in config and not ok(config[name]):
            got = json.dumps(config[name])[:80]
            raise ValueError(f"name_or_path: {str(file)!r}: {name} must be {what}, got {got}.")
    return config


def check_model_files(root: Path) -> None:
    """Check the files of the diffusers folder ``root`` that :meth:`~art_ssni.DiffusionModel.from_pretrained` reads
    (``unet/`` + ``scheduler/``, or a bare UNet folder): each a regular file, each config a JSON object with sane
    values (:data:`UNET_FIELDS`, :data:`SCHEDULER_FIELDS`; ``beta_start <= beta_end``). Files that are absent pass
    (the loader says what is missing). ``ValueError`` naming the file and the field."""
    unet_dir = root / "unet" if (root / "unet").is_dir() else root
    sched_dir = root / "scheduler" if (root / "scheduler").is_dir() else root
    for file in (unet_dir / "config.json", unet_dir / UNET_WEIGHTS, sched_dir / "scheduler_config.json"):
        _regular(file)
    if (unet_dir / "config.json").is_file():
        _check_fields(unet_dir / "config.json", UNET_FIELDS)
    sched_file = sched_dir / "scheduler_config.json"
    if sched_file.is_file():
        config = _check_fields(sched_file, SCHEDULER_FIELDS)
        start, end = config.get("beta_start", 1e-4), config.get("beta_end", 0.02)
        if config.get("trained_betas") is None and start > end:
            raise ValueError(f"name_or_path: {str(sched_file)!r}: beta_start ({start}) must be <= beta_end ({end}).")


def num_train_timesteps(root: Path) -> int:
    """``N`` of the diffusers folder ``root`` (its scheduler config; 1000, the default schedule's, without one), read
    from the JSON alone: for checks before a model is loaded."""
    sched_dir = root / "scheduler" if (root / "scheduler").is_dir() else root
    file = sched_dir / "scheduler_config.json"
    return int(_check_fields(file, SCHEDULER_FIELDS).get("num_train_timesteps", 1000)) if file.is_file() else 1000


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _check_args(
    name_or_path: object, revision: object, subfolder: object, cache_dir: object, local_files_only: object
) -> None:
    if not isinstance(name_or_path, (str, os.PathLike)) or not os.fspath(name_or_path):
        raise TypeError(
            f"name_or_path must be a local folder or a Hub repo id (a non-empty str or path), got {name_or_path!r}."
        )
    if revision is not None and (not isinstance(revision, str) or not revision):
        raise TypeError(f"revision must be None or a branch, tag or commit hash (a non-empty str), got {revision!r}.")
    if subfolder is not None:
        if not isinstance(subfolder, str) or not subfolder:
            raise TypeError(f"subfolder must be None or a non-empty str, got {subfolder!r}.")
        parts = PurePosixPath(subfolder.replace("\\", "/")).parts
        if PurePosixPath(subfolder).is_absolute() or ".." in parts:
            raise ValueError(f"subfolder must be a relative path inside the model folder, got {subfolder!r}.")
    if cache_dir is not None and not isinstance(cache_dir, (str, os.PathLike)):
        raise TypeError(f"cache_dir must be None or a folder path, got {type(cache_dir).__name__}.")
    if local_files_only is not None and not isinstance(local_files_only, bool):
        raise TypeError(f"local_files_only must be None or a bool, got {type(local_files_only).__name__}.")


def _is_repo_id(name: str) -> bool:
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(name)
    except ValueError:  # HFValidationError
        return False
    return True


def _pickle_files(repo_id: str, revision: str | None, snapshot: Path, prefix: str, offline: bool) -> list[str]:
    """Pickle weights of the repo under ``prefix``: listed on the Hub when online, else those in the snapshot."""
    from huggingface_hub import constants, list_repo_files

    names: list[str] = []
    if not (offline or constants.HF_HUB_OFFLINE):
        try:
            names = list_repo_files(repo_id, revision=revision)
        except (OSError, ValueError):  # offline or unreachable: fall back to what the cache holds
            names = []
    if not names and snapshot.is_dir():
        names = [p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file()]
    return sorted(n for n in names if n.startswith(prefix) and n.endswith(PICKLE_SUFFIXES))


def resolve(
    name_or_path: str | os.PathLike[str],
    *,
    revision: str | None = None,
    subfolder: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool | None = None,
) -> Path:
    """The local folder holding the diffusers files of ``name_or_path`` (a diffusion model or a saved defence).

    :param name_or_path: a local diffusers folder, or a Hub repo id such as ``"google/ddpm-cifar10-32"``. An
        existing folder always wins over a repo id of the same spelling.
    :param revision: Hub branch, tag or commit hash (default ``"main"``); pin a commit hash for reproducible runs.
        Ignored for a local folder.
    :param subfolder: a folder inside the model folder / repo that holds the model (its ``unet/`` or its UNet).
    :param cache_dir: the Hub cache folder (default: huggingface_hub's, ``HF_HUB_CACHE``).
    :param local_files_only: ``True`` never touches the network (the repo must be in the cache); ``None`` follows
        ``HF_HUB_OFFLINE``.
    :return: the folder; for a repo id, the snapshot folder inside the Hub cache (plus ``subfolder``).
    :raises FileNotFoundError: one line, when ``name_or_path`` is neither a folder nor a repo id that can be found
        (not on the Hub, or not in the cache when offline), or when ``subfolder`` does not exist.
    :raises ValueError: when the repo holds only pickle weights (the message names them and says how to convert).
    """
    _check_args(name_or_path, revision, subfolder, cache_dir, local_files_only)
    name = os.fspath(name_or_path)
    local = Path(name).expanduser()
    if local.is_dir():
        root = local / subfolder if subfolder else local
        if not root.is_dir():
            raise FileNotFoundError(f"subfolder: {subfolder!r} does not exist in the folder {name!r}.")
        check_model_files(root)
        return root
    if not _is_repo_id(name):
        raise FileNotFoundError(
            f"name_or_path: folder {name!r} does not exist, and it is not a Hugging Face Hub repo id ('org/name')."
        )
    from huggingface_hub import snapshot_download

    prefix = f"{subfolder.strip('/')}/" if subfolder else ""
    patterns = [prefix + pattern for pattern in _PATTERNS]
    where = f"revision {revision!r}" if revision else "revision 'main'"
    try:
        snapshot = Path(
            snapshot_download(
                name,
                revision=revision,
                cache_dir=None if cache_dir is None else Path(cache_dir),
                local_files_only=bool(local_files_only),
                allow_patterns=patterns,
            )
        )
    except (OSError, ValueError) as err:  # RepositoryNotFound / RevisionNotFound (HTTP), LocalEntryNotFound, ...
        mode = "offline, in the Hub cache" if local_files_only else "on the Hugging Face Hub or in its cache"
        raise FileNotFoundError(
            f"name_or_path: diffusion model {name!r} ({where}) is not a local folder and was not found {mode}: "
            f"{_first_line(err)}"
        ) from None
    root = snapshot / subfolder if subfolder else snapshot
    if not root.is_dir():
        raise FileNotFoundError(f"subfolder: {subfolder!r} does not exist in the Hub repo {name!r} ({where}).")
    if not any((root / sub / UNET_WEIGHTS).is_file() for sub in ("unet", ".")):
        pickled = _pickle_files(name, revision, snapshot, prefix, bool(local_files_only))
        if pickled:
            raise ValueError(
                f"name_or_path: Hub repo {name!r} ({where}) holds only pickle weights {pickled}, which are never "
                "loaded (unpickling can run code). Convert them in a trusted environment: "
                "UNet2DModel.from_pretrained(folder, use_safetensors=False).save_pretrained(out, "
                "safe_serialization=True), or pin a revision that has safetensors (e.g. the Hub's 'refs/pr/N' "
                "conversion)."
            )
    check_model_files(root)
    return root
