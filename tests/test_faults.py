"""Fault injection: corrupted, truncated or mismatched files, missing files and unwritable outputs.

Every injected fault must end in ONE clear error that names the file (``ValueError`` for a file that is there but
wrong, ``FileNotFoundError`` for a missing one) -- never a traceback from deep inside diffusers / safetensors /
json, never a silently half-loaded model. Writes are atomic (a temporary file, then ``os.replace``): a failed write
leaves the previous file intact. An unwritable output folder is reported before any expensive work starts.
Each fault is logged (``_reliability.record``) for ``docs/reliability.md``.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import numpy as np
import pytest
import torch
from _reliability import PROFILE, attempt, record
from hypothesis import given
from hypothesis import strategies as st

from art_ssni import DiffusionModel, ReferenceStats, SSNIPreprocessor, cli, cli_args
from art_ssni._common import write_json_atomic
from conftest import make_tiny_unet

WEIGHTS = "unet/diffusion_pytorch_model.safetensors"
UNET_CONFIG = "unet/config.json"
SCHED_CONFIG = "scheduler/scheduler_config.json"


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("diffusers") / "model"
    DiffusionModel(make_tiny_unet()).save_pretrained(root)
    return root


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(src, dst)
    return dst


# ------------------------------------------------------------------------------------------------- mutations
def truncate(fraction: float) -> Callable[[Path], None]:
    def mutate(file: Path) -> None:
        data = file.read_bytes()
        file.write_bytes(data[: int(len(data) * fraction)])

    return mutate


def overwrite(offset: int, payload: bytes) -> Callable[[Path], None]:
    def mutate(file: Path) -> None:
        data = bytearray(file.read_bytes())
        data[offset : offset + len(payload)] = payload
        file.write_bytes(bytes(data))

    return mutate


def replace_with(payload: bytes) -> Callable[[Path], None]:
    return lambda file: file.write_bytes(payload)


def edit_json(**changes) -> Callable[[Path], None]:
    def mutate(file: Path) -> None:
        data = json.loads(file.read_text())
        data.update(changes)
        file.write_text(json.dumps(data))

    return mutate


def delete(file: Path) -> None:
    file.unlink()


# (fault name, file to mutate, mutation, file the error must name (default: the mutated one))
DIFFUSERS_FAULTS = [
    ("weights: empty file", WEIGHTS, truncate(0.0), None),
    ("weights: truncated to 1%", WEIGHTS, truncate(0.01), None),
    ("weights: truncated to 50%", WEIGHTS, truncate(0.5), None),
    ("weights: last byte missing", WEIGHTS, truncate(0.99999), None),
    ("weights: header length absurd", WEIGHTS, overwrite(0, b"\xff" * 8), None),
    ("weights: header JSON garbled", WEIGHTS, overwrite(8, b"#" * 40), None),
    (
        "weights: random bytes",
        WEIGHTS,
        replace_with(bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8))),
        None,
    ),
    ("weights: missing", WEIGHTS, delete, None),
    ("config: not JSON", UNET_CONFIG, replace_with(b"{not json"), None),
    ("config: truncated", UNET_CONFIG, truncate(0.5), None),
    ("config: a JSON list", UNET_CONFIG, replace_with(b"[1, 2]"), None),
    ("config: binary garbage", UNET_CONFIG, replace_with(b"\xff\xfe\x00\x81"), None),
    ("config: nested 100k deep", UNET_CONFIG, replace_with(b"[" * 100_000), None),
    ("config/weights mismatch: block_out_channels", UNET_CONFIG, edit_json(block_out_channels=[16, 32]), None),
    ("config/weights mismatch: layers_per_block", UNET_CONFIG, edit_json(layers_per_block=2), None),
    ("config/weights mismatch: in_channels", UNET_CONFIG, edit_json(in_channels=3, out_channels=3), None),
    (
        "config/weights mismatch: attention blocks added",
        UNET_CONFIG,
        edit_json(down_block_types=["AttnDownBlock2D", "DownBlock2D"], up_block_types=["UpBlock2D", "AttnUpBlock2D"]),
        None,
    ),
    ("config: invalid value (in_channels=-1)", UNET_CONFIG, edit_json(in_channels=-1), None),
    ("config: wrong type (norm_num_groups='x')", UNET_CONFIG, edit_json(norm_num_groups="x"), None),
    ("scheduler: not JSON", SCHED_CONFIG, replace_with(b"{oops"), None),
    ("scheduler: negative num_train_timesteps", SCHED_CONFIG, edit_json(num_train_timesteps=-3), None),
    ("scheduler: unknown beta_schedule", SCHED_CONFIG, edit_json(beta_schedule="bogus"), None),
    ("scheduler: v-prediction", SCHED_CONFIG, edit_json(prediction_type="v_prediction"), "."),
]


@pytest.mark.parametrize(("fault", "target", "mutate", "named"), DIFFUSERS_FAULTS, ids=[f[0] for f in DIFFUSERS_FAULTS])
def test_diffusion_model_faults_give_one_clear_error(saved_model, tmp_path, fault, target, mutate, named):
    done = attempt("fault", f"DiffusionModel.from_pretrained: {fault}")
    root = _copy(saved_model, tmp_path)
    mutate(root / target)
    with pytest.raises((ValueError, FileNotFoundError)) as info:
        DiffusionModel.from_pretrained(root)
    assert str(root / (named or target)) in str(info.value), str(info.value)
    done(f"refused: {info.type.__name__}")


def test_the_pristine_copy_loads(saved_model, tmp_path):
    """Control: the unmodified folder loads and predicts like the original (so the faults above are the cause)."""
    model = DiffusionModel.from_pretrained(_copy(saved_model, tmp_path))
    ref = DiffusionModel(make_tiny_unet())
    x, t = torch.zeros(2, 1, 8, 8), torch.tensor([3, 7])
    torch.testing.assert_close(model.eps(x, t), ref.eps(x, t))


@PROFILE
@given(cut=st.floats(0.0, 1.0, exclude_max=True))
def test_any_truncation_of_the_weights_is_detected(saved_model, tmp_path_factory, cut):
    root = _copy(saved_model, tmp_path_factory.mktemp("cut"))
    weights = root / WEIGHTS
    data = weights.read_bytes()
    weights.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(ValueError) as info:
        DiffusionModel.from_pretrained(root)
    assert str(weights) in str(info.value)
    record("property", "truncated safetensors detected", "ValueError")


# ------------------------------------------------------------------------------------------------- preprocessor
@pytest.fixture(scope="module")
def saved_defence(tmp_path_factory, saved_model) -> Path:
    root = tmp_path_factory.mktemp("defence") / "ssni"
    ref = ReferenceStats(mean=10.0, std=2.0, min=6.0, max=14.0, count=100, score_steps=2)
    pre = SSNIPreprocessor(
        DiffusionModel.from_pretrained(saved_model), score_steps=2, t_star=3, reference=ref, device_type="cpu", seed=0
    )
    pre.save_pretrained(root)
    return root


CONFIG = "ssni_config.json"
DEFENCE_FAULTS = [
    ("config: not JSON", CONFIG, replace_with(b"{"), None),
    ("config: truncated", CONFIG, truncate(0.5), None),
    ("config: a JSON list", CONFIG, replace_with(b"[]"), None),
    ("config: nested 100k deep", CONFIG, replace_with(b"[" * 100_000), None),
    ("config: no params", CONFIG, edit_json(params=None), None),
    ("config: bad parameter value", CONFIG, lambda f: _edit_params(f, t_star="many"), None),
    ("config: unknown parameter", CONFIG, lambda f: _edit_params(f, shell="rm -rf /"), None),
    ("config: invalid reference", CONFIG, edit_json(reference={"mean": "x"}), None),
    ("config: diffusion entry not an object", CONFIG, edit_json(diffusion="diffusion"), None),
    ("config: missing", CONFIG, delete, None),
    ("diffusion weights truncated", "diffusion/" + WEIGHTS, truncate(0.5), None),
    ("diffusion config corrupt", "diffusion/" + UNET_CONFIG, replace_with(b"]"), None),
]


def _edit_params(file: Path, **changes) -> None:
    data = json.loads(file.read_text())
    data["params"].update(changes)
    file.write_text(json.dumps(data))


@pytest.mark.parametrize(("fault", "target", "mutate", "named"), DEFENCE_FAULTS, ids=[f[0] for f in DEFENCE_FAULTS])
def test_preprocessor_faults_give_one_clear_error(saved_defence, tmp_path, fault, target, mutate, named):
    done = attempt("fault", f"SSNIPreprocessor.from_pretrained: {fault}")
    root = _copy(saved_defence, tmp_path)
    mutate(root / target)
    with pytest.raises((ValueError, FileNotFoundError)) as info:
        SSNIPreprocessor.from_pretrained(root)
    assert str(root / (named or target)) in str(info.value), str(info.value)
    done(f"refused: {info.type.__name__}")


# ------------------------------------------------------------------------------------------------- zoo folders
@pytest.fixture(scope="module")
def zoo_folder(tmp_path_factory, saved_model) -> Path:
    """A zoo folder as train_zoo writes it, with the tiny UNet and an untrained CNN (built in a second)."""
    from art_ssni.zoo.classifier import DigitsCNN, save_classifier

    root = tmp_path_factory.mktemp("zoo") / "digits"
    shutil.copytree(saved_model, root)
    torch.manual_seed(0)
    save_classifier(DigitsCNN(), root)
    ReferenceStats(mean=10.0, std=2.0, min=6.0, max=14.0, count=100, score_steps=2).to_json(root / "reference.json")
    config = {
        "name": "digits",
        "t_star": 3,
        "eps": 0.2,
        "score_steps": 2,
        "nb_classes": 10,
        "clip_values": [0.0, 1.0],
        "split": {"test_size": 0.25, "random_state": 0},
    }
    (root / "zoo.json").write_text(json.dumps(config))
    return root


ZOO_FAULTS = [
    ("zoo.json: not JSON", "zoo.json", replace_with(b"{"), None),
    ("zoo.json: missing key", "zoo.json", lambda f: f.write_text(json.dumps({"name": "digits"})), None),
    ("zoo.json: a JSON list", "zoo.json", replace_with(b"[0]"), None),
    ("zoo.json: missing", "zoo.json", delete, None),
    ("reference.json: corrupt", "reference.json", replace_with(b"\x00\x01"), None),
    ("reference.json: missing", "reference.json", delete, None),
    ("reference.json: mean outside [min, max]", "reference.json", edit_json(mean=99.0), None),
    ("classifier.safetensors: truncated", "classifier.safetensors", truncate(0.5), None),
    ("classifier.safetensors: missing", "classifier.safetensors", delete, None),
    ("classifier.json: not JSON", "classifier.json", replace_with(b"nope"), None),
    ("classifier.json: does not match the weights", "classifier.json", edit_json(hidden=32), None),
    ("classifier.json: unknown argument", "classifier.json", edit_json(activation="gelu"), None),
    ("unet weights: truncated", WEIGHTS, truncate(0.3), None),
    ("unet config: does not match the weights", UNET_CONFIG, edit_json(block_out_channels=[64, 64]), None),
]


@pytest.mark.parametrize(("fault", "target", "mutate", "named"), ZOO_FAULTS, ids=[f[0] for f in ZOO_FAULTS])
def test_zoo_faults_give_one_clear_error(zoo_folder, tmp_path, fault, target, mutate, named):
    from art_ssni import zoo

    done = attempt("fault", f"zoo.load(path=...): {fault}")
    root = _copy(zoo_folder, tmp_path)
    zoo.load("digits", path=root)  # control: the pristine copy loads
    mutate(root / target)
    with pytest.raises((ValueError, FileNotFoundError)) as info:
        zoo.load("digits", path=root)
    assert str(root / (named or target)) in str(info.value), str(info.value)
    done(f"refused: {info.type.__name__}")


# ------------------------------------------------------------------------------------------------- reference stats
def test_missing_reference_file_is_named(tmp_path):
    done = attempt("fault", "ReferenceStats.from_json: missing file")
    missing = tmp_path / "nowhere" / "reference.json"
    with pytest.raises(FileNotFoundError, match="reference stats file .*nowhere/reference.json.* does not exist"):
        ReferenceStats.from_json(missing)
    done("refused: FileNotFoundError")


def test_cli_evaluate_missing_reference_is_one_line(tmp_path, model):
    """``art-ssni evaluate --reference missing.json``: exit status 2 and one line naming the file, no traceback."""
    done = attempt("fault", "art-ssni evaluate --reference <missing file>")
    fake_zoo = SimpleNamespace(
        diffusion=model,
        classifier=torch.nn.Flatten(),
        x_test=np.zeros((2, 1, 8, 8), np.float32),
        y_test=np.zeros(2, np.int64),
        reference=None,
        t_star=3,
        eps=0.1,
        nb_classes=10,
        clip_values=(0.0, 1.0),
    )
    missing = tmp_path / "missing.json"
    err = io.StringIO()
    with mock.patch("art_ssni.zoo.load", return_value=fake_zoo), contextlib.redirect_stderr(err):
        status = cli.main(["evaluate", "--reference", str(missing), "--out", str(tmp_path / "out"), "--quiet"])
    assert status == 2
    lines = err.getvalue().strip().splitlines()
    assert len(lines) == 1 and str(missing) in lines[0] and "Traceback" not in err.getvalue(), err.getvalue()
    done("refused: exit 2")


# ------------------------------------------------------------------------------------------------- output folder
def _unwritable(tmp_path: Path) -> list[tuple[str, Path]]:
    """Folders that cannot be created even as root: below a regular file, and in /proc."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    return [("below a regular file", blocker / "out"), ("in /proc", Path("/proc/art-ssni-reliability-test/out"))]


@pytest.mark.parametrize("command", ["evaluate", "train-zoo", "calibrate"])
def test_unwritable_output_fails_before_any_work(tmp_path, command):
    expensive = mock.Mock(side_effect=AssertionError("expensive work started before the output check"))
    for label, out in _unwritable(tmp_path):
        done = attempt("fault", f"art-ssni {command} --out <folder {label}>")
        target = out / "reference.json" if command == "calibrate" else out
        err = io.StringIO()
        with (
            mock.patch("art_ssni.zoo.load", expensive),
            mock.patch("art_ssni.zoo.train_zoo", expensive),
            mock.patch.object(DiffusionModel, "from_pretrained", expensive),
            contextlib.redirect_stderr(err),
        ):
            status = cli.main([command, "--out", str(target)])
        assert status == 2, err.getvalue()
        assert "--out" in err.getvalue() and str(out) in err.getvalue() and "Traceback" not in err.getvalue()
        expensive.assert_not_called()
        done("refused before any work: exit 2")


def test_disk_full_is_reported_before_any_work(tmp_path):
    done = attempt("fault", "output folder on a full disk (ENOSPC)")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with mock.patch("tempfile.mkdtemp", full), pytest.raises(cli_args.CLIError, match="No space left on device"):
        cli_args.check_writable(tmp_path / "out")
    assert not (tmp_path / "out").exists()  # the check creates nothing
    done("refused before any work: CLIError")


# ------------------------------------------------------------------------------------------------- atomic writes
def _failing_write(self, data, *args, **kwargs):
    """A write that dies half-way, as on a full disk or a kill: half the bytes, then ENOSPC."""
    with open(self, "w") as handle:
        handle.write(data[: len(data) // 2])
    raise OSError(errno.ENOSPC, "No space left on device")


def _failing_fsync(fd):
    """The flush of an atomic JSON writer (art_ssni._common.write_json_atomic) dies: ENOSPC after a partial write."""
    raise OSError(errno.ENOSPC, "No space left on device")


def test_reference_to_json_is_atomic(tmp_path):
    done = attempt("fault", "ReferenceStats.to_json interrupted mid-write (ENOSPC)")
    path = tmp_path / "reference.json"
    old = ReferenceStats(mean=1.0, std=1.0, min=0.0, max=2.0, count=3)
    old.to_json(path)
    with mock.patch("os.fsync", _failing_fsync), pytest.raises(OSError):
        ReferenceStats(mean=5.0, std=1.0, min=0.0, max=9.0, count=7).to_json(path)
    assert ReferenceStats.from_json(path) == old  # the previous file survives intact
    done("previous file intact")


def test_preprocessor_config_write_is_atomic(tmp_path, model, reference):
    done = attempt("fault", "SSNIPreprocessor.save_pretrained interrupted mid-write (ENOSPC)")
    pre = SSNIPreprocessor(model, t_star=3, reference=reference, device_type="cpu")
    pre.save_pretrained(tmp_path, save_model=False)
    before = (tmp_path / CONFIG).read_text()
    pre.t_star = 4
    with mock.patch("os.fsync", _failing_fsync), pytest.raises(OSError):
        pre.save_pretrained(tmp_path, save_model=False)
    assert (tmp_path / CONFIG).read_text() == before
    assert SSNIPreprocessor.from_pretrained(tmp_path, model=model).t_star == 3
    done("previous file intact")


def test_cli_results_write_is_atomic(tmp_path):
    done = attempt("fault", "art-ssni results.json interrupted mid-write (ENOSPC)")
    path = tmp_path / "results.json"
    write_json_atomic(path, {"run": 1})  # what art-ssni evaluate writes results.json with
    with mock.patch("os.fsync", _failing_fsync), pytest.raises(OSError):
        write_json_atomic(path, {"run": 2, "padding": "x" * 1000})
    assert json.loads(path.read_text()) == {"run": 1}
    done("previous file intact")


# ------------------------------------------------------------------------------------------------- typed configs
# (fault, mutation of the config dict, the exact message after the file name)
TYPED_CONFIG_FAULTS = [
    (
        "apply_predict a string",
        lambda c: c.update(apply_predict="false"),
        'apply_predict must be true or false, got "false".',
    ),
    ("params a list", lambda c: c.update(params=[1]), "params must be an object, got [1]."),
    ("params missing", lambda c: c.pop("params"), "is not a valid SSNIPreprocessor config: no 'params'."),
    (
        "diffusion a string",
        lambda c: c.update(diffusion="diffusion"),
        'diffusion must be an object or null, got "diffusion".',
    ),
    (
        "diffusion extra key",
        lambda c: c.update(diffusion={"subfolder": "diffusion", "x": 1}),
        "diffusion must be null or {'subfolder': str}",
    ),
    ("model in params", lambda c: c["params"].update(model="x"), "params.model is not stored in params"),
    ("reference in params", lambda c: c["params"].update(reference={}), "params.reference is not stored in params"),
    ("t_star a string", lambda c: c["params"].update(t_star="many"), 'params.t_star must be an integer, got "many".'),
    ("verbose a string", lambda c: c["params"].update(verbose="no"), 'params.verbose must be true or false, got "no".'),
    (
        "clip_values a number",
        lambda c: c["params"].update(clip_values=1),
        "params.clip_values must be a [min, max] list, got 1.",
    ),
    (
        "eot_samples absurd",
        lambda c: c["params"].update(eot_samples=10**9),
        "eot_samples must be an int in [1, 100000], got 1000000000.",
    ),
    (
        "batch_size absurd",
        lambda c: c["params"].update(batch_size=10**15),
        "batch_size must be an int in [1, 100000], got 1000000000000000.",
    ),
    (
        "device_type unknown",
        lambda c: c.update(device_type="tpu"),
        "device_type must be one of ['cpu', 'gpu'] (ART's names), got 'tpu'.",
    ),
    ("device_type a number", lambda c: c.update(device_type=5), "device_type must be a string, got 5."),
    ("unknown field", lambda c: c.update(shell="ls"), "has unknown field(s) ['shell']"),
    ("base not a base", lambda c: c["params"].update(base=3), "params.base must be a string or an object, got 3."),
]


@pytest.mark.parametrize(("fault", "mutate", "message"), TYPED_CONFIG_FAULTS, ids=[f[0] for f in TYPED_CONFIG_FAULTS])
def test_every_config_field_is_typed_and_named(saved_defence, tmp_path, fault, mutate, message):
    done = attempt("fault", f"SSNIPreprocessor.from_pretrained: typed config, {fault}")
    root = _copy(saved_defence, tmp_path)
    config = json.loads((root / CONFIG).read_text())
    mutate(config)
    (root / CONFIG).write_text(json.dumps(config))
    with pytest.raises(ValueError) as info:
        SSNIPreprocessor.from_pretrained(root)
    assert str(info.value).startswith(repr(str(root / CONFIG))) and message in str(info.value), str(info.value)
    done(f"refused: {info.type.__name__}")


# (fault, file, changes, the exact message after the file name)
BROKEN_MODEL_CONFIGS = [
    ("beta_start negative", SCHED_CONFIG, {"beta_start": -1}, "beta_start must be a number in (0, 1), got -1."),
    (
        "num_train_timesteps 0",
        SCHED_CONFIG,
        {"num_train_timesteps": 0},
        "num_train_timesteps must be an int >= 2, got 0.",
    ),
    ("beta_end 2", SCHED_CONFIG, {"beta_end": 2.0}, "beta_end must be a number in (0, 1), got 2.0."),
    (
        "beta_start above beta_end",
        SCHED_CONFIG,
        {"beta_start": 0.5, "beta_end": 0.02},
        "beta_start (0.5) must be <= beta_end (0.02).",
    ),
    (
        "trained_betas with a 0",
        SCHED_CONFIG,
        {"trained_betas": [0.0, 0.1]},
        "trained_betas must be null or a list of numbers in (0, 1), got [0.0, 0.1].",
    ),
    (
        "sample_size a string",
        UNET_CONFIG,
        {"sample_size": "x"},
        'sample_size must be null, an int >= 1 or a list of two, got "x".',
    ),
    (
        "block_out_channels empty",
        UNET_CONFIG,
        {"block_out_channels": []},
        "block_out_channels must be a non-empty list of ints >= 1, got [].",
    ),
    ("layers_per_block 0", UNET_CONFIG, {"layers_per_block": 0}, "layers_per_block must be an int >= 1, got 0."),
]


@pytest.mark.parametrize(
    ("fault", "target", "changes", "message"), BROKEN_MODEL_CONFIGS, ids=[f[0] for f in BROKEN_MODEL_CONFIGS]
)
def test_broken_model_configs_are_refused_at_load(
    saved_model, saved_defence, tmp_path, fault, target, changes, message
):
    done = attempt("fault", f"DiffusionModel.from_pretrained: {fault}")
    root = _copy(saved_model, tmp_path)
    edit_json(**changes)(root / target)
    with pytest.raises(ValueError) as info:
        DiffusionModel.from_pretrained(root)
    assert str(info.value) == f"name_or_path: {str(root / target)!r}: {message}", str(info.value)
    defence = tmp_path / "defence"  # the same file inside a saved defence: refused at load, named
    shutil.copytree(saved_defence, defence)
    edit_json(**changes)(defence / "diffusion" / target)
    with pytest.raises(ValueError, match=re.escape(message)):
        SSNIPreprocessor.from_pretrained(defence)
    done(f"refused: {info.type.__name__}")
