"""The files of a saved defence (``ssni_config.json`` + ``diffusion/``): writing, reading and validating them (no ART).

Only JSON and safetensors are read, only inside the folder: nothing is unpickled, no path escapes it. Every file is
resolved before it is read (links included) and must be a regular file inside the folder (or, for a folder in the
Hugging Face Hub cache, inside its repo's ``blobs/``, where the cache's own links point); every field of the config
has its JSON type checked, and every error names the file and the field.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from art_ssni._common import is_int, is_real, write_json_atomic
from art_ssni.ssni.bases import make_base
from art_ssni.ssni.reference import ReferenceStats

__all__ = ["CONFIG_NAME", "MODEL_SUBFOLDER", "PARAM_TYPES", "check_inside", "read_config", "write_config"]

CONFIG_NAME = "ssni_config.json"
MODEL_SUBFOLDER = "diffusion"

_KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "int": (is_int, "an integer"),
    "number": (is_real, "a number"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "null": (lambda v: v is None, "null"),
    "object": (lambda v: isinstance(v, dict), "an object"),
    "pair": (lambda v: isinstance(v, list) and len(v) == 2 and all(is_real(x) for x in v), "a [min, max] list"),
}
#: the JSON type of every stored parameter ("a|b": either); the values are then checked by the constructor
PARAM_TYPES = {
    "reweight": "str", "t_star": "int", "bias": "number", "tau": "number|null", "score_steps": "int",
    "score_noise": "str", "score_seed": "int", "fit_draws": "int", "base": "str|object", "sampler": "str",
    "steps": "int|null", "eta": "number", "checkpoint": "bool", "batch_size": "int", "clip_values": "pair",
    "seed": "int|null", "gradient": "str", "surrogate_steps": "int", "eot_samples": "int", "channels_first": "bool",
    "verbose": "bool",
}  # fmt: skip
#: the top-level fields of the config and their JSON types
CONFIG_TYPES = {
    "class": "str", "art_ssni_version": "str", "params": "object", "device_type": "str", "apply_fit": "bool",
    "apply_predict": "bool", "reference": "object|null", "diffusion": "object|null",
}  # fmt: skip

#: the flattened base settings of version 0.1.0 configs -> the field of the base object they belong to
_LEGACY_BASE_FIELDS = {
    "gns_stages": ("gns", "stages"),
    "gdmp_iterations": ("gdmp", "iterations"),
    "gdmp_scale": ("gdmp", "scale"),
    "gdmp_distance": ("gdmp", "distance"),
}


def _check_type(file: Path, field: str, value: Any, kinds: str) -> None:
    if not any(_KINDS[k][0](value) for k in kinds.split("|")):
        want = " or ".join(_KINDS[k][1] for k in kinds.split("|"))
        raise ValueError(f"{str(file)!r}: {field} must be {want}, got {json.dumps(value)[:100]}.")


def _allowed_roots(root: Path) -> list[Path]:
    """The folder itself and, for a Hub cache snapshot (``models--org--name/snapshots/<commit>/...``), the repo's
    ``blobs/`` folder that the cache's links point to."""
    real = root.resolve()
    roots = [real]
    for parent in [root.absolute(), *root.absolute().parents]:
        if parent.parent.name == "snapshots" and parent.parent.parent.name.startswith("models--"):
            roots.append((parent.parent.parent / "blobs").resolve())
            break
    return roots


def check_inside(file: Path, root: Path) -> None:
    """``ValueError`` naming ``file`` when it resolves (links followed) outside ``root`` or is not a regular file
    (a device such as ``/dev/zero``, a FIFO, a folder). A file that does not exist passes (its reader says so)."""
    if not file.exists() and not file.is_symlink():
        return
    real = file.resolve()
    if not any(real.is_relative_to(r) for r in _allowed_roots(root)):
        raise ValueError(f"{str(file)!r} leads to {str(real)!r}, outside the folder {str(root)!r}; refused.")
    if not real.is_file():
        raise ValueError(f"{str(file)!r} is not a regular file (a device, FIFO or folder); refused.")


def _check_model_files(folder: Path, root: Path) -> None:
    """Every file the diffusion model's loader reads in ``folder`` (both layouts) stays inside ``root``."""
    for sub in (folder, folder / "unet", folder / "scheduler"):
        check_inside(sub / "config.json", root)
        check_inside(sub / "diffusion_pytorch_model.safetensors", root)
        check_inside(sub / "scheduler_config.json", root)
        if sub.is_symlink() and not sub.resolve().is_relative_to(root.resolve()):
            raise ValueError(f"{str(sub)!r} leads to {str(sub.resolve())!r}, outside the folder {str(root)!r}.")


def _upgrade_base(params: dict[str, Any]) -> None:
    """A 0.1.0 config (``base`` a name, its settings flattened) -> ``base`` as ``{"name": ..., **fields}``."""
    legacy = {key: params.pop(key) for key in list(params) if key in _LEGACY_BASE_FIELDS}
    name = params.get("base", "diffpure")
    if legacy and isinstance(name, str):
        fields = {_LEGACY_BASE_FIELDS[k][1]: v for k, v in legacy.items() if _LEGACY_BASE_FIELDS[k][0] == name}
        params["base"] = {"name": name, **fields}


def write_config(root: Path, config: Mapping[str, Any]) -> None:
    """Write ``config`` (the class, version, ``params``, device and apply flags, ``reference``, ``diffusion``) as
    ``root / ssni_config.json``, atomically."""
    write_json_atomic(root / CONFIG_NAME, dict(config), indent=2)


def _load(config_file: Path, class_name: str) -> dict[str, Any]:
    try:
        config = json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise ValueError(f"{str(config_file)!r} is not a valid {class_name} config: {err}"[:2000]) from err
    if not isinstance(config, dict):
        raise ValueError(f"{str(config_file)!r} is not a valid {class_name} config: a {type(config).__name__}.")
    if "params" not in config:
        raise ValueError(f"{str(config_file)!r} is not a valid {class_name} config: no 'params'.")
    unknown = sorted(set(config) - set(CONFIG_TYPES))
    if unknown:
        raise ValueError(f"{str(config_file)!r} has unknown field(s) {unknown}; the fields are {list(CONFIG_TYPES)}.")
    for field, kinds in CONFIG_TYPES.items():
        if field in config:
            _check_type(config_file, field, config[field], kinds)
    if config.get("class") != class_name:
        raise ValueError(f"{str(config_file)!r} describes a {config.get('class')!r}, not a {class_name}.")
    diffusion = config.get("diffusion")
    if diffusion is not None and (set(diffusion) != {"subfolder"} or not isinstance(diffusion["subfolder"], str)):
        raise ValueError(f"{str(config_file)!r}: diffusion must be null or {{'subfolder': str}}, got {diffusion!r}.")
    return config


def read_config(root: Path, class_name: str, known: list[str]) -> tuple[dict[str, Any], Path | None]:
    """The constructor keywords stored in ``root / ssni_config.json`` and the folder of the saved diffusion model.

    :param class_name: the class the file must describe; :param known: its parameter names.
    :return: ``(kwargs, model_folder)``: ``kwargs`` holds the parameters (base object, reference statistics,
        tuples restored), ``device_type``, ``apply_fit`` and ``apply_predict``; ``model_folder`` is ``None`` when the
        defence was saved without its model. ``ValueError`` / ``FileNotFoundError`` name the file (and the field).
    """
    config_file = root / CONFIG_NAME
    check_inside(config_file, root)
    if not config_file.is_file():
        raise FileNotFoundError(f"path: {str(config_file)!r} does not exist.")
    config = _load(config_file, class_name)
    params = dict(config["params"])
    _upgrade_base(params)
    for name in ("model", "reference"):
        if name in params:
            raise ValueError(
                f"{str(config_file)!r}: params.{name} is not stored in params (the model is diffusion/, the "
                "reference statistics the top-level 'reference')."
            )
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(f"{str(config_file)!r} has unknown parameter(s) {unknown}.")
    for name, value in params.items():
        _check_type(config_file, f"params.{name}", value, PARAM_TYPES[name])
    folder = None
    if config.get("diffusion"):
        folder = (root / config["diffusion"]["subfolder"]).resolve()
        if not folder.is_relative_to(root.resolve()):
            raise ValueError(f"{str(config_file)!r}: the diffusion subfolder must stay inside {str(root)!r}.")
        _check_model_files(root / config["diffusion"]["subfolder"], root)
    try:
        reference = config.get("reference")
        params["reference"] = None if reference is None else ReferenceStats.from_dict(reference)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{str(config_file)!r}: invalid reference stats: {err}") from err
    try:
        if "base" in params:
            params["base"] = make_base(params["base"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{str(config_file)!r}: params.base: {err}") from err
    if "clip_values" in params:
        params["clip_values"] = tuple(params["clip_values"])
    params["device_type"] = config.get("device_type", "gpu")
    params["apply_fit"] = config.get("apply_fit", False)
    params["apply_predict"] = config.get("apply_predict", True)
    return params, folder
