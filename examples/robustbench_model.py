"""A RobustBench classifier behind SSNI: RobustBench's ``clean_accuracy`` and an ART classifier on the defended model.

Needs the optional extra ``pip install 'art-ssni[robustbench]'`` (see docs/robustbench.md for the torch /
torchvision pair that imports); without it this script prints why it is skipped and exits 0. Everything is loaded
offline: the classifier from RobustBench's model folder (``{model_dir}/cifar10/Linf/{name}.pt``, read with
``weights_only=True``), the diffusion model from a local diffusers folder, CIFAR-10 from a local folder.

Run::

    python examples/robustbench_model.py --model Standard --model-dir ./models \\
        --diffusion ./ddpm-cifar10-32 --data-dir ./cifar-10-batches-py --n-ex 16
    python examples/robustbench_model.py --quick   # random weights of a real RobustBench architecture and a tiny
                                                   # random UNet on random images: the plumbing only

The full run fits SSNI's reference statistics on ``--n-ref`` CIFAR-10 training images first (the paper uses 5,000;
on a CPU each image costs ``T' = 20`` UNet evaluations of the 35.7M-parameter DDPM).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch


def quick_fixtures(root: Path) -> tuple[str, Path, Path, np.ndarray, np.ndarray, np.ndarray]:
    """A model folder with a randomly initialised real RobustBench architecture, a tiny random 3×32×32 diffusers
    pipeline and random images: ``(model_name, model_dir, diffusion_dir, x_ref, x, y)``."""
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    name = "Ding2020MMA"  # WideResNet-28-4, 5.8M parameters
    torch.manual_seed(0)
    arch = model_dicts[BenchmarkDataset("cifar10")][ThreatModel("Linf")][name]["model"]()
    (root / "models" / "cifar10" / "Linf").mkdir(parents=True)
    torch.save({"state_dict": arch.state_dict()}, root / "models" / "cifar10" / "Linf" / f"{name}.pt")
    unet = UNet2DModel(
        sample_size=32,
        in_channels=3,
        out_channels=3,
        layers_per_block=1,
        block_out_channels=(32, 64),
        norm_num_groups=8,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
    )
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
    DDPMPipeline(unet=unet, scheduler=scheduler).save_pretrained(root / "diffusion", safe_serialization=True)
    rng = np.random.default_rng(0)
    x_ref = rng.random((8, 3, 32, 32), dtype=np.float32)
    x = rng.random((4, 3, 32, 32), dtype=np.float32)
    y = rng.integers(0, 10, size=4)
    return name, root / "models", root / "diffusion", x_ref, x, y


def run(args: argparse.Namespace, workdir: Path) -> int:
    from art_ssni import DiffusionModel, SSNIPreprocessor
    from art_ssni.robustbench import as_art_classifier, load_defended_model

    if args.quick:
        name, model_dir, diffusion_dir, x_ref, x, y = quick_fixtures(workdir)
        settings = dict(t_star=10, sampler="ddim", steps=2, seed=args.seed)
    else:
        from art_ssni.leaderboard import load_cifar10, load_cifar10_train

        if args.diffusion is None or args.data_dir is None:
            raise SystemExit("--diffusion and --data-dir are required (or --quick)")
        name, model_dir, diffusion_dir = args.model, args.model_dir, args.diffusion
        x, y = load_cifar10(args.data_dir, args.n_ex)
        x_ref = load_cifar10_train(args.data_dir, args.n_ref)
        settings = dict(t_star=100, sampler="ddpm", seed=args.seed)

    diffusion = DiffusionModel.from_pretrained(diffusion_dir)
    reference = SSNIPreprocessor(diffusion, seed=args.seed, device_type="cpu").fit(x_ref).reference
    model = load_defended_model(
        name, model_dir=model_dir, diffusion=diffusion, reference=reference, defence=args.defence, **settings
    )
    from robustbench.utils import clean_accuracy  # importable once import_robustbench() has run

    accuracy = clean_accuracy(model, torch.from_numpy(x), torch.from_numpy(y), batch_size=len(x))
    print(f"RobustBench clean_accuracy of {name} behind {args.defence}: {accuracy:.3f} on {len(x)} images")

    classifier = as_art_classifier(
        name, model_dir=model_dir, diffusion=diffusion, reference=reference, defence=args.defence, **settings
    )
    predictions = classifier.predict(x).argmax(axis=1)
    print(f"ART PyTorchClassifier with the purifier as preprocessing defence: accuracy {np.mean(predictions == y):.3f}")
    if args.quick:
        print("(--quick: random weights and random images, so these accuracies mean nothing; the plumbing works)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A RobustBench model behind SSNI (needs art-ssni[robustbench]).")
    parser.add_argument("--quick", action="store_true", help="random weights and images in a temp dir (plumbing)")
    parser.add_argument("--model", default="Standard", help="RobustBench CIFAR-10 Linf model name")
    parser.add_argument("--model-dir", type=Path, default=Path("models"), help="RobustBench model folder")
    parser.add_argument("--diffusion", type=Path, default=None, help="local diffusers folder (e.g. ddpm-cifar10-32)")
    parser.add_argument("--data-dir", type=Path, default=None, help="CIFAR-10 folder or .npz (local files)")
    parser.add_argument("--n-ex", type=int, default=16, help="test images (default: %(default)s)")
    parser.add_argument("--n-ref", type=int, default=512, help="training images for the reference statistics")
    parser.add_argument("--defence", default="ssni-n", help="registered defence name (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from art_ssni.robustbench import import_robustbench

    try:
        import_robustbench()
    except ImportError as err:
        print(f"skipped: {err}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        return run(args, Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
