"""GNS -- gradual noise scheduling (Lee & Kim, ICCV 2023, https://arxiv.org/abs/2303.09051).

Stages ``s_1, ..., s_K`` purified in sequence, each stage noising the previous stage's output. Their CIFAR-10 schedule
is ``(30, 30, 30, 30, 50, 50, 125, 125)`` with a majority vote over 10 purifications at prediction time
(:func:`art_ssni.evaluation.robust` votes). With SSNI every stage is scaled by the sample's factor:

(1) ``L_{k,i} = clamp(round(s_k · t_i / t*), 0, N - 1)`` (round half up).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from art_ssni._common import is_int
from art_ssni.diffusion.model import DiffusionModel
from art_ssni.diffusion.sampling import num_steps, purify

__all__ = ["GNS", "GNS_STAGES", "gns_levels"]

#: Lee & Kim's CIFAR-10 GNS schedule (ICCV 2023).
GNS_STAGES: tuple[int, ...] = (30, 30, 30, 30, 50, 50, 125, 125)


def _stages_error(stages: Any, upper: str) -> ValueError:
    return ValueError(f"GNS.stages must be a non-empty sequence of ints in [1, {upper}], got {stages!r}.")


@dataclass(frozen=True)
class GNS:
    """GNS stages in sequence, each scaled by ``t_i / t*`` (eq. (1) of the module docstring).

    :param stages: stage levels ``s_k >= 1`` (and ``<= N - 1`` of the model that runs them).

    Examples::

        >>> out = GNS(stages=(30, 50, 125))(model, x, t, t_star=125, sampler="ddim", steps=5)
    """

    stages: tuple[int, ...] = GNS_STAGES

    name: ClassVar[str] = "gns"
    #: several noising / reverse stages: the straight-through level gradient of one stage does not apply
    single_stage: ClassVar[bool] = False

    def __post_init__(self) -> None:
        stages = self.stages
        if isinstance(stages, (str, bytes)) or not isinstance(stages, Sequence) or len(stages) == 0:
            raise _stages_error(stages, "N - 1")
        if not all(is_int(s) and int(s) >= 1 for s in stages):
            raise _stages_error(stages, "N - 1")
        object.__setattr__(self, "stages", tuple(int(s) for s in stages))

    def check_levels(self, num_timesteps: int) -> None:
        """``ValueError`` when a stage exceeds ``num_timesteps - 1`` (the model's last level)."""
        if max(self.stages) > int(num_timesteps) - 1:
            raise _stages_error(self.stages, str(int(num_timesteps) - 1))

    def levels(self, t: torch.Tensor, *, t_star: int, num_timesteps: int) -> torch.Tensor:
        """``(K, B)`` long per-stage, per-sample levels of eq. (1)."""
        return gns_levels(t, t_star=t_star, stages=self.stages, num_timesteps=num_timesteps)

    def __call__(
        self,
        model: DiffusionModel,
        x: torch.Tensor,
        t: torch.Tensor,
        *,
        t_star: int,
        noise: torch.Tensor | None = None,
        **engine: Any,
    ) -> torch.Tensor:
        """Purify stage after stage, stage ``k`` of sample ``i`` at level ``L_{k,i}``.

        :param x: ``(B, C, H, W)`` model-space images; :param t: ``(B,)`` integer levels; :param t_star: ``t*``.
        :param noise: forward noise of the *first* stage (later stages draw theirs from ``generator``).
        :param engine: ``sampler``, ``steps``, ``eta``, ``generator``, ``clip_denoised``, ``checkpoint`` of
            :func:`art_ssni.diffusion.sampling.purify`, used by every stage.
        :return: ``(B, C, H, W)``; costs ``Σ_k Σ_i steps(L_{k,i})`` UNet rows.
        """
        self.check_levels(model.num_timesteps)
        levels = self.levels(t, t_star=t_star, num_timesteps=model.num_timesteps)
        out = x
        for k in range(levels.shape[0]):
            out = purify(model, out, levels[k], noise=noise if k == 0 else None, **engine)
        return out

    def nfe(
        self, t: torch.Tensor, *, t_star: int, num_timesteps: int, sampler: str = "ddpm", steps: int | None = None
    ) -> torch.Tensor:
        """UNet sample-evaluations per sample, ``(B,)`` long: ``Σ_k steps(L_{k,i})``."""
        levels = self.levels(t.long(), t_star=t_star, num_timesteps=num_timesteps)
        return torch.stack([num_steps(row, sampler=sampler, steps=steps) for row in levels]).sum(0)


def gns_levels(t: torch.Tensor, *, t_star: int, stages: Sequence[int], num_timesteps: int) -> torch.Tensor:
    """Per-stage, per-sample levels of GNS, eq. (1) of the module docstring.

    :param t: ``(B,)`` integer levels chosen for the samples (``t_i = t*`` reproduces ``stages`` exactly).
    :param t_star: ``t*`` of the reweighting, ``>= 1``.
    :return: ``(K, B)`` long tensor, ``K = len(stages)``, values in ``[0, num_timesteps - 1]``.
    """
    if not is_int(t_star) or int(t_star) < 1:
        raise ValueError(f"t_star must be an int >= 1, got {t_star!r}.")
    GNS(stages=tuple(stages)).check_levels(num_timesteps)
    s = torch.tensor([int(v) for v in stages], dtype=torch.float64, device=t.device)
    scaled = s[:, None] * t.to(torch.float64)[None, :] / float(t_star)
    return torch.floor(scaled + 0.5).clamp(0, num_timesteps - 1).long()
