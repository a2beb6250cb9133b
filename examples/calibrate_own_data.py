"""Calibrate SSNI on your own clean data: fit the reference statistics, save them, reuse them.

SSNI maps each input's score norm to a noise level by comparing it with the score norms of *clean* images of the
same distribution (``ReferenceStats``: mean, std, min, max, quantiles). They are learned once with
``SSNIPreprocessor.fit`` (the paper uses 5,000 clean training images), written as JSON with
``ReferenceStats.to_json`` and passed back as ``reference=`` -- nothing about a later batch ever changes them.
This script does that on the digits zoo's diffusion model (or a diffusers folder) and your images, then saves the
whole defence with ``save_pretrained`` and checks that ``from_pretrained`` rebuilds one that picks the same noise
levels for the same seed.

Run::

    python examples/calibrate_own_data.py --images my_clean_images.npy --out calibration/
    python examples/calibrate_own_data.py --quick       # 64 zoo training images, output in a temp dir

``--images``: ``.npy`` of ``(N, C, H, W)`` float images in ``[0, 1]`` (default: the zoo's training split). The
command-line equivalent of the fitting step is ``art-ssni calibrate --images my_clean_images.npy``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from art_ssni import DiffusionModel, ReferenceStats, SSNIPreprocessor, zoo


def run(
    out: Path, *, images: np.ndarray | None, model_dir: Path | None, n_fit: int, score_steps: int, seed: int
) -> int:
    models = zoo.load("digits")
    model = models.diffusion if model_dir is None else DiffusionModel.from_pretrained(model_dir)
    x_clean = models.x_train if images is None else images
    x_fit = x_clean[:n_fit]
    x_held_out = models.x_test[:32] if images is None else x_clean[n_fit : n_fit + 32]

    defence = SSNIPreprocessor(
        model, reweight="sigmoid", t_star=models.t_star, score_steps=score_steps, seed=seed, device_type="cpu"
    )
    defence.fit(x_fit)
    reference = defence.reference
    assert reference is not None
    out.mkdir(parents=True, exist_ok=True)
    reference.to_json(out / "reference.json")
    print(
        f"fitted on {reference.count} clean images (T' = {reference.score_steps}): mean {reference.mean:.4g}, "
        f"std {reference.std:.4g}, min {reference.min:.4g}, max {reference.max:.4g} -> {out / 'reference.json'}"
    )

    # Reuse: a new defence (any reweighting) built from the saved statistics.
    loaded = ReferenceStats.from_json(out / "reference.json")
    assert loaded == reference, "the JSON round trip must be exact"
    ssni_l = SSNIPreprocessor(
        model,
        reweight="linear",
        t_star=models.t_star,
        reference=loaded,
        seed=seed,
        score_steps=score_steps,
        device_type="cpu",
    )

    if len(x_held_out):
        rng = np.random.default_rng(seed)
        noisy = np.clip(x_held_out + rng.normal(0.0, 0.1, size=x_held_out.shape), 0.0, 1.0).astype(np.float32)
        for name, batch in (("held-out clean", x_held_out), ("held-out + N(0, 0.1²) noise", noisy)):
            norms = defence.score_norms(batch)
            print(
                f"{name:>28}: score norm mean {norms.mean():.4g}; t_i SSNI-N mean "
                f"{defence.timesteps(batch).mean():.1f}, SSNI-L mean {ssni_l.timesteps(batch).mean():.1f} "
                f"(t* = {models.t_star})"
            )

    # Save the whole defence (configuration + reference; the model only if it is not the zoo's) and reload it.
    folder = out / "defence"
    defence.save_pretrained(folder, save_model=model_dir is not None)
    rebuilt = SSNIPreprocessor.from_pretrained(folder, model=None if model_dir is not None else model)
    defence.reset_generator()
    probe = x_fit[:8]
    same = np.array_equal(defence.timesteps(probe), rebuilt.timesteps(probe))
    print(
        f"saved the defence to {folder} ({sorted(p.name for p in folder.iterdir())}); reloaded: same t_i for the "
        f"same seed: {same}"
    )
    return 0 if same else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fit SSNI's reference statistics on your own clean images.")
    parser.add_argument("--images", type=Path, default=None, help=".npy (N, C, H, W) clean images in [0, 1]")
    parser.add_argument("--model-dir", type=Path, default=None, help="local diffusers folder (default: the zoo's)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: ./calibration)")
    parser.add_argument("--n-fit", type=int, default=None, help="images to fit on (default: all, --quick: 64)")
    parser.add_argument("--score-steps", type=int, default=20, help="T' (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="64 images, output in a temporary folder")
    args = parser.parse_args(argv)
    images = None if args.images is None else np.load(args.images, allow_pickle=False).astype(np.float32)
    n_fit = args.n_fit or (64 if args.quick else 10**9)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or (Path(tmp) if args.quick else Path("calibration"))
        return run(
            out, images=images, model_dir=args.model_dir, n_fit=n_fit, score_steps=args.score_steps, seed=args.seed
        )


if __name__ == "__main__":
    sys.exit(main())
