"""Where a diffusion model's files are: a local folder, or a Hugging Face Hub repo id resolved into the Hub cache.

:func:`resolve` turns ``name_or_path`` into a local folder that :meth:`~art_ssni.DiffusionModel.from_pretrained`
reads. A folder that exists is used as it is. Anything else must be a Hub repo id (``"google/ddpm-cifar10-32"``):
it is fetched with :func:`huggingface_hub.snapshot_download`, so the Hub's own cache (``HF_HUB_CACHE`` or
``cache_dir``), offline mode (``HF_HUB_OFFLINE=1`` or ``local_files_only=True``) and revision pinning (a branch,
tag or commit hash) behave as everywhere else in the ecosystem. Only JSON configs and safetensors weights are
fetched, never pickle files.

Layer 1: pure Python + huggingface_hub (a dependency of diffusers); no ART, no environment variables read here
(huggingface_hub reads its own).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

__all__ = ["PICKLE_SUFFIXES", "UNET_WEIGHTS", "resolve"]

#: the UNet's weights file name inside a diffusers folder (safetensors)
UNET_WEIGHTS = "diffusion_pytorch_model.safetensors"
#: file suffixes of pickle-based weights, which are never loaded (unpickling can run code)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
#: what is fetched from a repo (fnmatch patterns, ``*`` crosses folders): JSON configs and the UNet's full-precision
#: safetensors, at the root (bare UNet repo), under ``unet/`` + ``scheduler/`` (pipeline repo) or deeper (a saved
#: :class:`~art_ssni.SSNIPreprocessor`: ``ssni_config.json`` + ``diffusion/unet/...``); never pickle files
_PATTERNS = ("*.json", "*" + UNET_WEIGHTS)


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
    return root
