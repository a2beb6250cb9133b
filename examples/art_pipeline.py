"""ART pipeline with the shipped digits zoo: PyTorchClassifier + SSNIPreprocessor + an ART attack.

Builds a named defence from the registry (SSNI-N by default) on the zoo's diffusion model, puts it in front of the
zoo's CNN as an ART preprocessing defence, attacks the *defended* classifier with ART's own PGD (exact gradients
through every reverse step, EOT through the preprocessor's ``eot_samples``) and reports clean, per-attack and
per-sample worst-case accuracy with :func:`art_ssni.evaluation.robust_accuracy`.

Run::

    python examples/art_pipeline.py              # 64 test images, PGD-20, EOT 4 (a few minutes on one CPU core)
    python examples/art_pipeline.py --quick      # 8 images, PGD-2, EOT 2 (seconds; what the tests run)

The numbers it prints are from this run only (few images, a weak attack in --quick mode): report results as
``docs/evaluation-guide.md`` explains, not from this script.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
from art.attacks.evasion import ProjectedGradientDescent
from art.estimators.classification import PyTorchClassifier

from art_ssni import defences, zoo
from art_ssni.evaluation import robust_accuracy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="SSNI as an ART defence on the digits zoo, attacked by ART's PGD.")
    parser.add_argument("--quick", action="store_true", help="tiny run (8 images, 2 iterations) for tests")
    parser.add_argument("--defence", default="ssni-n", help="registered defence name (default: %(default)s)")
    parser.add_argument("--n-images", type=int, default=None, help="test images (default: 64, --quick: 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the defence and the evaluation")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = parser.parse_args(argv)
    if args.defence not in defences.available():
        parser.error(f"--defence must be one of {defences.available()}, got {args.defence!r}")
    n = args.n_images or (8 if args.quick else 64)
    iterations, eot, steps = (2, 2, 5) if args.quick else (20, 4, 10)

    models = zoo.load("digits", device=args.device)
    defence = defences.make(
        args.defence,
        models.diffusion,
        reference=models.reference,
        t_star=models.t_star,  # the zoo's base noise level t*
        sampler="ddim",  # min(steps, t_i) strided reverse steps per sample
        steps=steps,
        eta=1.0,  # stochastic DDIM
        checkpoint=True,  # backward memory independent of the number of reverse steps
        eot_samples=eot,  # every attack gradient averages `eot` independent purifications
        seed=args.seed,
        device_type="gpu" if args.device == "cuda" else "cpu",
    )
    classifier = PyTorchClassifier(
        models.classifier,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=models.x_test.shape[1:],
        nb_classes=models.nb_classes,
        clip_values=models.clip_values,
        preprocessing_defences=[defence],
        device_type="gpu" if args.device == "cuda" else "cpu",
    )
    x, y = models.x_test[:n], models.y_test[:n]
    attack = ProjectedGradientDescent(
        classifier,
        norm=np.inf,
        eps=models.eps,
        eps_step=models.eps / 4,
        max_iter=iterations,
        num_random_init=0,
        batch_size=n,
        verbose=False,
    )
    start = time.perf_counter()
    result = robust_accuracy(classifier, x, y, {"art-pgd": attack}, seed=args.seed)
    seconds = time.perf_counter() - start

    print(
        f"defence {args.defence} (t* = {models.t_star}, DDIM-{steps}, EOT {eot}); ART PGD ℓ∞ eps = {models.eps}, "
        f"{iterations} iterations; {n} digits test images; {seconds:.1f} s"
    )
    print(result.summary())
    if args.defence != "diffpure":
        levels = defence.timesteps(x)
        print(
            f"noise levels t_i chosen on the clean images: min {levels.min()}, mean {levels.mean():.1f}, "
            f"max {levels.max()}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
