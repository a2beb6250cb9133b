"""Plug a diffusers UNet from a local folder into SSNI (offline, safetensors only).

``DiffusionModel.from_pretrained`` reads a diffusers pipeline folder (``unet/`` + ``scheduler/``, as written by
``DDPMPipeline.save_pretrained`` -- the layout of e.g. google/ddpm-cifar10-32 once downloaded) or a bare UNet folder.
Nothing is downloaded and nothing is unpickled. This script loads such a folder, calibrates SSNI-N on clean images,
prints the noise levels it picks and checks the engine's cost: purifying a batch costs exactly ``Σ_i steps_i``
UNet evaluations (``steps_i = t_i`` for DDPM, ``min(steps, t_i)`` for DDIM; plus ``B · T'`` for scoring), never
``B · max_i steps_i``.

Run::

    python examples/diffusers_folder.py --model-dir path/to/ddpm-cifar10-32 --images clean.npy
    python examples/diffusers_folder.py --quick   # a tiny random UNet saved with save_pretrained into a temp dir

``--images`` is a ``.npy`` file of ``(N, C, H, W)`` float images in ``[0, 1]`` matching the UNet; half of them
calibrate the reference statistics, the other half are purified. Without it, uniform random images are used (to
show the plumbing only: their score norms mean nothing).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

from art_ssni import DiffusionModel, SSNIPreprocessor
from art_ssni.diffusion import num_steps


def save_tiny_random_pipeline(folder: Path, seed: int = 0) -> None:
    """Write a ~1M-parameter random 1×8×8 UNet and the DDPM linear schedule as a diffusers pipeline folder."""
    torch.manual_seed(seed)
    unet = UNet2DModel(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        layers_per_block=1,
        block_out_channels=(32, 64),
        norm_num_groups=8,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
    )
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")
    DDPMPipeline(unet=unet, scheduler=scheduler).save_pretrained(folder, safe_serialization=True)


def run(
    model_dir: Path, images: np.ndarray | None, *, n_images: int, t_star: int, sampler: str, steps: int, seed: int
) -> int:
    model = DiffusionModel.from_pretrained(model_dir)
    c, s = model.in_channels, model.sample_size
    n_params = sum(p.numel() for p in model.unet.parameters())
    print(
        f"loaded {model_dir}: UNet {n_params / 1e6:.2f}M parameters, images ({c}, {s}, {s}), "
        f"{model.num_timesteps} timesteps"
    )
    if images is None:
        images = np.random.default_rng(seed).random((2 * n_images, c, s, s), dtype=np.float32)
    if images.ndim != 4 or images.shape[1:] != (c, s, s):
        raise SystemExit(f"--images must be (N, {c}, {s}, {s}) for this UNet, got {images.shape}")
    x_fit, x = images[: len(images) // 2], images[len(images) // 2 :][:n_images]

    ddim_steps = steps if sampler == "ddim" else None
    defence = SSNIPreprocessor(
        model, reweight="sigmoid", t_star=t_star, sampler=sampler, steps=ddim_steps, seed=seed, device_type="cpu"
    ).fit(x_fit)
    ref = defence.reference
    assert ref is not None
    print(
        f"reference from {ref.count} images: mean {ref.mean:.4g}, std {ref.std:.4g} (default τ), "
        f"min {ref.min:.4g}, max {ref.max:.4g}"
    )

    # Scoring is random: restart the seeded stream so that the purification below draws the same score noise
    # (hence picks the same t_i) as this inspection call.
    defence.reset_generator()
    levels = defence.timesteps(x)
    defence.reset_generator()
    model.reset_nfe()
    purified, _ = defence(x)
    per_sample = num_steps(torch.as_tensor(levels), sampler=sampler, steps=ddim_steps)
    expected = int(per_sample.sum()) + len(x) * defence.score_steps
    print(f"t_i of {len(x)} images: {levels.tolist()} ({sampler} steps {per_sample.tolist()})")
    print(
        f"UNet evaluations: {model.nfe} = Σ_i steps_i + B·T' = {int(per_sample.sum())} + {len(x)}·"
        f"{defence.score_steps} = {expected}; running every sample for the maximum would cost "
        f"{len(x) * int(per_sample.max())} for purification alone"
    )
    print(
        f"purified: shape {purified.shape}, range [{purified.min():.3f}, {purified.max():.3f}], "
        f"mean |change| {np.abs(purified - x).mean():.4f}"
    )
    return 0 if model.nfe == expected else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="SSNI on a diffusers UNet loaded from a local folder.")
    parser.add_argument("--model-dir", type=Path, default=None, help="local diffusers folder (pipeline or UNet)")
    parser.add_argument("--images", type=Path, default=None, help=".npy (N, C, H, W) clean images in [0, 1]")
    parser.add_argument("--quick", action="store_true", help="save a tiny random UNet to a temp dir and use it")
    parser.add_argument("--n-images", type=int, default=None, help="images purified (default 16, --quick: 4)")
    parser.add_argument("--t-star", type=int, default=100, help="base noise level t* (default: %(default)s)")
    parser.add_argument("--sampler", choices=["ddpm", "ddim"], default="ddpm", help="reverse sampler (default: ddpm)")
    parser.add_argument("--steps", type=int, default=10, help="DDIM steps with --sampler ddim (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    n = args.n_images or (4 if args.quick else 16)
    images = None if args.images is None else np.load(args.images, allow_pickle=False).astype(np.float32)
    if args.model_dir is not None:
        return run(
            args.model_dir,
            images,
            n_images=n,
            t_star=args.t_star,
            sampler=args.sampler,
            steps=args.steps,
            seed=args.seed,
        )
    if not args.quick:
        parser.error("--model-dir is required (or --quick to try it on a tiny random UNet)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "tiny-ddpm"
        save_tiny_random_pipeline(folder, seed=args.seed)
        print(f"saved a tiny random DDPM pipeline to {folder}: {sorted(p.name for p in folder.iterdir())}")
        return run(
            folder, images, n_images=n, t_star=args.t_star, sampler=args.sampler, steps=args.steps, seed=args.seed
        )


if __name__ == "__main__":
    sys.exit(main())
