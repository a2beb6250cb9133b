"""The zoo's small CNN classifier for ``1 x 8 x 8`` digits images, saved as safetensors + a JSON config.

Architecture (:class:`DigitsCNN`, about 85K parameters with the defaults)::

    conv 3x3 (1 -> 32), ReLU -> conv 3x3 (32 -> 64), ReLU -> max-pool 2 -> flatten (64 * 4 * 4)
    -> linear (1024 -> 64), ReLU -> dropout -> linear (64 -> 10)

Inputs are ``(B, C, H, W)`` float tensors with pixels in ``[0, 1]``; outputs are ``(B, nb_classes)`` logits.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

__all__ = ["CLASSIFIER_CONFIG", "CLASSIFIER_WEIGHTS", "DigitsCNN", "load_classifier", "save_classifier"]

CLASSIFIER_WEIGHTS = "classifier.safetensors"
CLASSIFIER_CONFIG = "classifier.json"


@dataclass(frozen=True)
class _Config:
    in_channels: int = 1
    image_size: int = 8
    channels: tuple[int, int] = (32, 64)
    hidden: int = 64
    nb_classes: int = 10
    dropout: float = 0.25


class DigitsCNN(torch.nn.Module):
    """Two 3x3 convolutions, one 2x2 max-pool and a two-layer head.

    :param in_channels: channels ``C`` of the input images.
    :param image_size: ``H = W`` of the input images (must be even).
    :param channels: output channels of the two convolutions.
    :param hidden: width of the hidden linear layer.
    :param nb_classes: number of output logits.
    :param dropout: dropout probability before the last layer (active in ``train()`` mode only).
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 8,
        channels: tuple[int, int] | list[int] = (32, 64),
        hidden: int = 64,
        nb_classes: int = 10,
        dropout: float = 0.25,
    ) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("image_size", image_size), ("hidden", hidden)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}.")
        if image_size % 2:
            raise ValueError(f"image_size must be even (one 2x2 max-pool), got {image_size}.")
        if len(channels) != 2 or not all(isinstance(c, int) and c >= 1 for c in channels):
            raise ValueError(f"channels must be two ints >= 1, got {channels!r}.")
        if isinstance(nb_classes, bool) or not isinstance(nb_classes, int) or nb_classes < 2:
            raise ValueError(f"nb_classes must be an int >= 2, got {nb_classes!r}.")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")
        pair = (int(channels[0]), int(channels[1]))
        self.config = _Config(in_channels, image_size, pair, hidden, nb_classes, float(dropout))
        c1, c2 = self.config.channels
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(in_channels, c1, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv2d(c1, c2, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
            torch.nn.Flatten(),
        )
        self.head = torch.nn.Sequential(
            torch.nn.Linear(c2 * (image_size // 2) ** 2, hidden),
            torch.nn.ReLU(),
            torch.nn.Dropout(dropout),
            torch.nn.Linear(hidden, nb_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` pixels in ``[0, 1]`` → ``(B, nb_classes)`` logits."""
        return self.head(self.features(x))

    def config_dict(self) -> dict[str, Any]:
        data = asdict(self.config)
        data["channels"] = list(data["channels"])
        return {"_class_name": type(self).__name__, **data}


def save_classifier(model: DigitsCNN, path: str | os.PathLike[str]) -> None:
    """Write ``classifier.safetensors`` (weights) and ``classifier.json`` (architecture) into folder ``path``."""
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(root / CLASSIFIER_WEIGHTS))
    (root / CLASSIFIER_CONFIG).write_text(json.dumps(model.config_dict(), indent=2, sort_keys=True) + "\n")


def load_classifier(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> DigitsCNN:
    """Load a :class:`DigitsCNN` from folder ``path`` (safetensors only, no pickle), in ``eval()`` mode."""
    root = Path(path)
    config_file, weights_file = root / CLASSIFIER_CONFIG, root / CLASSIFIER_WEIGHTS
    for file in (config_file, weights_file):
        if not file.is_file():
            raise FileNotFoundError(f"path: classifier file {str(file)!r} does not exist.")
    try:  # every fault below is one ValueError naming the file
        config = json.loads(config_file.read_text())
        class_name = config.pop("_class_name", DigitsCNN.__name__)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, AttributeError, TypeError) as err:
        raise ValueError(f"path: {str(config_file)!r} is not a valid classifier config ({err}).") from err
    if class_name != DigitsCNN.__name__:
        raise ValueError(f"{str(config_file)!r}: unknown classifier class {class_name!r}.")
    try:
        model = DigitsCNN(**config)
    except (TypeError, ValueError) as err:
        raise ValueError(f"path: {str(config_file)!r}: invalid classifier config ({err}).") from err
    try:
        state = load_file(str(weights_file), device="cpu")
    except Exception as err:  # safetensors raises its own SafetensorError
        raise ValueError(f"path: {str(weights_file)!r} is not a valid safetensors file ({err}).") from err
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"path: {str(config_file)!r} does not match the weights {str(weights_file)!r}: {err}") from err
    return model.to(device).eval()
