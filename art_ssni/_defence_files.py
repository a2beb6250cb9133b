"""The files of a saved defence (``ssni_config.json`` + ``diffusion/``): reading and validating them (no ART).

Only JSON and safetensors are read, only inside the folder: nothing is unpickled, no path escapes it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from art_ssni.ssni.bases import make_base
from art_ssni.ssni.reference import ReferenceStats

__all__ = ["CONFIG_NAME", "MODEL_SUBFOLDER", "read_config"]

CONFIG_NAME = "ssni_config.json"
MODEL_SUBFOLDER = "diffusion"


#: the flattened base settings of version 0.1.0 configs -> the field of the base object they belong to
_LEGACY_BASE_FIELDS = {
    "gns_stages": ("gns", "stages"),
    "gdmp_iterations": ("gdmp", "iterations"),
    "gdmp_scale": ("gdmp", "scale"),
    "gdmp_distance": ("gdmp", "distance"),
}


def _upgrade_base(params: dict[str, Any]) -> None:
    """A 0.1.0 config (``base`` a name, its settings flattened) -> ``base`` as ``{"name": ..., **fields}``."""
    legacy = {key: params.pop(key) for key in list(params) if key in _LEGACY_BASE_FIELDS}
    name = params.get("base", "diffpure")
    if legacy and isinstance(name, str):
        fields = {_LEGACY_BASE_FIELDS[k][1]: v for k, v in legacy.items() if _LEGACY_BASE_FIELDS[k][0] == name}
        params["base"] = {"name": name, **fields}


def read_config(root: Path, class_name: str, known: list[str]) -> tuple[dict[str, Any], Path | None]:
    """The constructor keywords stored in ``root / ssni_config.json`` and the folder of the saved diffusion model.

    :param class_name: the class the file must describe; :param known: its parameter names.
    :return: ``(kwargs, model_folder)``: ``kwargs`` holds the parameters (base object, reference statistics,
        tuples restored), ``device_type``, ``apply_fit`` and ``apply_predict``; ``model_folder`` is ``None`` when the
        defence was saved without its model. ``ValueError`` / ``FileNotFoundError`` name the file.
    """
    config_file = root / CONFIG_NAME
    if not config_file.is_file():
        raise FileNotFoundError(f"path: {str(config_file)!r} does not exist.")
    try:
        config = json.loads(config_file.read_text())
        params = dict(config["params"])
        diffusion, reference = config.get("diffusion"), config.get("reference")
        if diffusion is not None and not isinstance(diffusion.get("subfolder"), str):
            raise TypeError(f"'diffusion' must be null or {{'subfolder': str}}, got {diffusion!r}")
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, AttributeError, KeyError, TypeError) as err:
        raise ValueError(f"{str(config_file)!r} is not a valid {class_name} config: {err}"[:2000]) from err
    if config.get("class") != class_name:
        raise ValueError(f"{str(config_file)!r} describes a {config.get('class')!r}, not a {class_name}.")
    _upgrade_base(params)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(f"{str(config_file)!r} has unknown parameter(s) {unknown}.")
    folder = None
    if diffusion:
        folder = (root / str(diffusion["subfolder"])).resolve()
        if not folder.is_relative_to(root.resolve()):
            raise ValueError(f"{str(config_file)!r}: the diffusion subfolder must stay inside {str(root)!r}.")
    try:
        params["reference"] = None if reference is None else ReferenceStats.from_dict(reference)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{str(config_file)!r}: invalid reference stats: {err}") from err
    try:
        if "base" in params:
            params["base"] = make_base(params["base"])
    except ValueError as err:
        raise ValueError(f"{str(config_file)!r}: {err}") from err
    if isinstance(params.get("clip_values"), list):
        params["clip_values"] = tuple(params["clip_values"])
    params["device_type"] = config.get("device_type", "gpu")
    params["apply_fit"] = bool(config.get("apply_fit", False))
    params["apply_predict"] = bool(config.get("apply_predict", True))
    return params, folder
