"""Security: nothing in the package unpickles untrusted data, and saved folders cannot point outside themselves.

* A source scan (AST, plus a plain-text grep) of ``art_ssni/``: no ``pickle.load(s)`` / ``dill`` / ``joblib`` /
  ``marshal`` loads, no ``torch.load`` without ``weights_only=True``, no ``allow_pickle=True``, no ``eval`` /
  ``exec``, no ``trust_remote_code``; a custom ``pickle.Unpickler`` must restrict ``find_class``.
* Real malicious files -- a pickle whose ``__reduce__`` creates a file when it is unpickled -- are offered to every
  loader of the package that reads user files. Each must refuse it, and the file must NOT exist afterwards. A
  control run in a subprocess shows the payload is live: plain ``torch.load(weights_only=False)`` creates the file.
* ``SSNIPreprocessor.from_pretrained`` refuses a config whose diffusion subfolder escapes the saved folder
  (``..``, absolute paths, symlinks).
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import io
import json
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _reliability import attempt, no_hang

from art_ssni import DiffusionModel, ReferenceStats, SSNIPreprocessor, cli
from conftest import make_tiny_unet

PACKAGE = Path(__file__).resolve().parents[1] / "art_ssni"


# ------------------------------------------------------------------------------------------------- source scan
UNSAFE_LOADS = {
    ("pickle", "load"),
    ("pickle", "loads"),
    ("cPickle", "load"),
    ("cPickle", "loads"),
    ("_pickle", "load"),
    ("_pickle", "loads"),
    ("dill", "load"),
    ("dill", "loads"),
    ("joblib", "load"),
    ("cloudpickle", "load"),
    ("cloudpickle", "loads"),
    ("marshal", "load"),
    ("marshal", "loads"),
    ("shelve", "open"),
    ("pandas", "read_pickle"),
    ("pd", "read_pickle"),
    ("yaml", "unsafe_load"),
    ("jsonpickle", "decode"),
}
# torch.load calls that do not spell ``weights_only=True`` but force it another way, each with a behavioural test
# below (test_robustbench_loader_refuses_a_malicious_pt).
FORCED_WEIGHTS_ONLY = {("robustbench.py", "_WeightsOnlyTorch.load")}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


class _Scanner(ast.NodeVisitor):
    def __init__(self, file: Path) -> None:
        self.file = file
        self.scope: list[str] = []
        self.findings: list[str] = []
        self.torch_loads: list[str] = []

    def _where(self, node: ast.AST) -> str:
        return f"{self.file.relative_to(PACKAGE.parent)}:{node.lineno}"

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        bases = {_dotted(b) for b in node.bases}
        if bases & {"pickle.Unpickler", "Unpickler", "_pickle.Unpickler"}:
            if not any(isinstance(item, ast.FunctionDef) and item.name == "find_class" for item in node.body):
                self.findings.append(f"{self._where(node)}: Unpickler subclass {node.name} without find_class")
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if (node.module, alias.name) in UNSAFE_LOADS:
                self.findings.append(f"{self._where(node)}: from {node.module} import {alias.name}")

    def visit_Call(self, node: ast.Call) -> None:
        name = _dotted(node.func)
        parts = tuple(name.rsplit(".", 1)) if "." in name else ("", name)
        if parts in UNSAFE_LOADS:
            self.findings.append(f"{self._where(node)}: {name}(...)")
        if name in ("eval", "exec") or name.endswith("pickle.Unpickler"):
            self.findings.append(f"{self._where(node)}: {name}(...)")
        if name == "yaml.load" and not any(k.arg == "Loader" and "Safe" in _dotted(k.value) for k in node.keywords):
            self.findings.append(f"{self._where(node)}: yaml.load without a SafeLoader")
        for keyword in node.keywords:
            value = keyword.value
            is_true = isinstance(value, ast.Constant) and value.value is True
            if keyword.arg in ("allow_pickle", "trust_remote_code") and not (
                isinstance(value, ast.Constant) and value.value is False
            ):
                self.findings.append(f"{self._where(node)}: {name}({keyword.arg}={ast.unparse(value)})")
            if keyword.arg == "weights_only" and not is_true:
                self.findings.append(f"{self._where(node)}: {name}(weights_only={ast.unparse(value)})")
        if name == "torch.load":
            forced = any(
                k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                for k in node.keywords
            )
            if not forced:
                where = (self.file.name, ".".join(self.scope))
                self.torch_loads.append(f"{self._where(node)} in {'.'.join(self.scope)}")
                if where not in FORCED_WEIGHTS_ONLY:
                    self.findings.append(f"{self._where(node)}: torch.load without weights_only=True")
        self.generic_visit(node)


def _package_files() -> list[Path]:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 20, "the scan must see the whole package"
    return files


def test_source_scan_finds_no_unpickling():
    done = attempt("scan", "AST scan of art_ssni/")
    findings: list[str] = []
    for file in _package_files():
        scanner = _Scanner(file)
        scanner.visit(ast.parse(file.read_text(), filename=str(file)))
        findings += scanner.findings
    assert not findings, "unsafe deserialisation in the package:\n" + "\n".join(findings)
    done("no unsafe load", files=len(_package_files()))


def test_plain_text_grep_finds_no_unpickling():
    done = attempt("scan", "plain-text grep of art_ssni/")
    pattern = re.compile(
        r"pickle\.loads?\(|allow_pickle\s*=\s*True|weights_only\s*=\s*False|trust_remote_code\s*=\s*True"
    )
    hits = [
        f"{f.relative_to(PACKAGE.parent)}:{i}: {line.strip()}"
        for f in _package_files()
        for i, line in enumerate(f.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert not hits, "\n".join(hits)
    done("no unsafe load", files=len(_package_files()))


def test_scanner_catches_what_it_should():
    """The scanner itself is tested: each unsafe pattern in a snippet is reported."""
    snippets = {
        "import pickle\npickle.load(f)": 1,
        "import torch\ntorch.load(p)": 1,
        "import torch\ntorch.load(p, weights_only=False)": 2,
        "import numpy as np\nnp.load(p, allow_pickle=True)": 1,
        "from pickle import loads": 1,
        "import pickle\nclass U(pickle.Unpickler):\n    pass": 1,
        "eval(s)": 1,
        "import torch\ntorch.load(p, weights_only=True)": 0,
        "import numpy as np\nnp.load(p, allow_pickle=False)": 0,
    }
    for code, count in snippets.items():
        scanner = _Scanner(PACKAGE / "snippet.py")
        scanner.visit(ast.parse(code))
        assert len(scanner.findings) == count, (code, scanner.findings)


# ------------------------------------------------------------------------------------------------- malicious files
class _CreatesFile:
    """Unpickling this runs ``open(target, "w")``: it creates the file (harmless, but code execution all the same)."""

    def __init__(self, target: Path) -> None:
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


@pytest.fixture
def payload(tmp_path) -> tuple[Path, _CreatesFile]:
    target = tmp_path / "pwned.txt"
    return target, _CreatesFile(target)


def _malicious_pt(path: Path, evil: _CreatesFile) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {"w": evil}}, path)
    return path


#: how a refusal to unpickle shows: our checks (ValueError / OSError), torch's weights-only unpickler
REFUSALS = (ValueError, OSError, pickle.UnpicklingError, RuntimeError)


def _refused(name: str, target: Path, call) -> BaseException:
    """Run ``call``; it must raise, and the payload's file must not exist."""
    done = attempt("malicious", name)
    with pytest.raises(REFUSALS) as info:  # a refusal of a known kind; a crash of another kind is a bug
        call()
    assert not target.exists(), f"{name}: the malicious file was executed"
    done("refused", error=type(info.value).__name__, file_created=False)
    return info.value


def test_the_payload_is_live(tmp_path, payload):
    """Control: an unsafe torch.load of the file really runs the payload (in a subprocess)."""
    target, evil = payload
    pt = _malicious_pt(tmp_path / "evil.pt", evil)
    code = f"import torch; torch.load({str(pt)!r}, weights_only=False)"
    subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, timeout=120)
    assert target.exists(), "the control payload did not run: the refusal tests below would prove nothing"


def test_torch_load_weights_only_refuses(tmp_path, payload):
    target, evil = payload
    pt = _malicious_pt(tmp_path / "evil.pt", evil)
    err = _refused("torch.load(weights_only=True) of a .pt", target, lambda: torch.load(pt, weights_only=True))
    assert isinstance(err, pickle.UnpicklingError)


def test_robustbench_loader_refuses_a_malicious_pt(tmp_path, payload):
    """The torch RobustBench sees inside art_ssni.robustbench forces weights_only=True."""
    from art_ssni import robustbench  # our own module: a broken import fails, never skips

    target, evil = payload
    pt = _malicious_pt(tmp_path / "models" / "cifar10" / "Linf" / "Standard.pt", evil)
    _refused("art_ssni.robustbench: torch.load shim", target, lambda: robustbench._WeightsOnlyTorch.load(pt))
    _refused(
        "art_ssni.robustbench: torch.load shim, weights_only=False asked",
        target,
        lambda: robustbench._WeightsOnlyTorch.load(pt, weights_only=False),
    )


@pytest.mark.skipif(
    importlib.util.find_spec("robustbench") is None,
    reason="needs the robustbench extra (pip install 'art-ssni[robustbench]'; tox -e robustbench)",
)
def test_robustbench_load_classifier_refuses_a_malicious_pt(tmp_path, payload):
    """RobustBench's own load_model, called by load_classifier, reads through the weights-only shim."""
    from art_ssni import robustbench

    target, evil = payload
    _malicious_pt(tmp_path / "models" / "cifar10" / "Linf" / "Standard.pt", evil)
    robustbench.import_robustbench()
    _refused(
        "art_ssni.robustbench.load_classifier of a RobustBench .pt",
        target,
        lambda: robustbench.load_classifier("Standard", model_dir=tmp_path / "models"),
    )


def test_pickle_only_diffusers_folder_is_refused(tmp_path, payload):
    target, evil = payload
    root = tmp_path / "model"
    DiffusionModel(make_tiny_unet()).save_pretrained(root)
    (root / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    _malicious_pt(root / "unet" / "diffusion_pytorch_model.bin", evil)
    err = _refused(
        "DiffusionModel.from_pretrained: folder with only a .bin", target, lambda: DiffusionModel.from_pretrained(root)
    )
    assert isinstance(err, ValueError) and "pickle" in str(err)
    # the same folder inside a saved defence
    defence = tmp_path / "defence"
    pre = SSNIPreprocessor(DiffusionModel(make_tiny_unet()), reweight="constant", t_star=3, device_type="cpu")
    pre.save_pretrained(defence)
    shutil.rmtree(defence / "diffusion")
    shutil.copytree(root, defence / "diffusion")
    _refused(
        "SSNIPreprocessor.from_pretrained: diffusion folder with only a .bin",
        target,
        lambda: SSNIPreprocessor.from_pretrained(defence),
    )


def test_pickle_disguised_as_safetensors_is_refused(tmp_path, payload):
    target, evil = payload
    root = tmp_path / "model"
    DiffusionModel(make_tiny_unet()).save_pretrained(root)
    _malicious_pt(root / "unet" / "diffusion_pytorch_model.safetensors", evil)
    err = _refused(
        "DiffusionModel.from_pretrained: pickle renamed .safetensors",
        target,
        lambda: DiffusionModel.from_pretrained(root),
    )
    assert isinstance(err, ValueError)


def test_zoo_classifier_pickle_is_refused(tmp_path, payload):
    from art_ssni.zoo.classifier import DigitsCNN, load_classifier, save_classifier

    target, evil = payload
    save_classifier(DigitsCNN(), tmp_path)
    _malicious_pt(tmp_path / "classifier.safetensors", evil)
    _refused("zoo classifier: pickle renamed .safetensors", target, lambda: load_classifier(tmp_path))


def test_pickled_numpy_arrays_are_refused_by_the_cli(tmp_path, payload):
    done = attempt("malicious", "art-ssni calibrate --images <pickled object .npy>")
    target, evil = payload
    evil_npy = tmp_path / "images.npy"
    np.save(evil_npy, np.array([evil, 1], dtype=object), allow_pickle=True)
    assert not target.exists()
    diffusion = tmp_path / "diffusion"
    DiffusionModel(make_tiny_unet()).save_pretrained(diffusion)
    err = io.StringIO()
    argv = ["calibrate", "--images", str(evil_npy), "--diffusion", str(diffusion), "--out", str(tmp_path / "r.json")]
    with contextlib.redirect_stderr(err):
        status = cli.main(argv)
    assert status == 2 and "images.npy" in err.getvalue()
    assert not target.exists()
    done("refused", error="exit 2", file_created=False)


def test_malicious_cifar_batch_is_refused(tmp_path, payload):
    from art_ssni.leaderboard import data

    target, evil = payload
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": evil, b"labels": [0]}, protocol=2))
    _refused("leaderboard: CIFAR-10 python batch with a payload", target, lambda: data.load_cifar10(tmp_path))
    npz = tmp_path / "cifar.npz"
    np.savez(npz, x_test=np.array([evil], dtype=object), y_test=np.zeros(1))
    _refused("leaderboard: .npz with a pickled object array", target, lambda: data.load_cifar10(npz))


def test_reference_stats_pickle_is_refused(tmp_path, payload):
    target, evil = payload
    path = tmp_path / "reference.json"
    path.write_bytes(pickle.dumps(evil))
    _refused("ReferenceStats.from_json of a pickle", target, lambda: ReferenceStats.from_json(path))


# ------------------------------------------------------------------------------------------------- path escape
@pytest.fixture
def saved_with_outside_model(tmp_path) -> tuple[Path, Path]:
    outside = tmp_path / "outside-model"
    DiffusionModel(make_tiny_unet()).save_pretrained(outside)
    root = tmp_path / "defence"
    SSNIPreprocessor(
        DiffusionModel(make_tiny_unet()), reweight="constant", t_star=3, device_type="cpu"
    ).save_pretrained(root)
    return root, outside


@pytest.mark.parametrize("escape", ["relative", "absolute", "symlink", "dotdot-inside"])
def test_diffusion_subfolder_cannot_escape(saved_with_outside_model, escape):
    done = attempt("malicious", f"SSNIPreprocessor.from_pretrained: diffusion subfolder escape ({escape})")
    root, outside = saved_with_outside_model
    config_file = root / "ssni_config.json"
    config = json.loads(config_file.read_text())
    shutil.rmtree(root / "diffusion")
    if escape == "relative":
        sub = "../outside-model"
    elif escape == "absolute":
        sub = str(outside)
    elif escape == "dotdot-inside":
        sub = "diffusion/../../outside-model"
    else:
        (root / "diffusion").symlink_to(outside, target_is_directory=True)
        sub = "diffusion"
    config["diffusion"] = {"subfolder": sub}
    config_file.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="must stay inside"):
        SSNIPreprocessor.from_pretrained(root)
    done("refused", error="ValueError", file_created=False)


def test_subfolder_inside_still_loads(saved_with_outside_model):
    root, _ = saved_with_outside_model
    assert isinstance(SSNIPreprocessor.from_pretrained(root).model, DiffusionModel)


# ------------------------------------------------------------------------------------------------- links and devices
@pytest.fixture
def saved_defence_and_outside(tmp_path) -> tuple[Path, Path]:
    root = tmp_path / "defence"
    SSNIPreprocessor(
        DiffusionModel(make_tiny_unet()), reweight="constant", t_star=3, device_type="cpu"
    ).save_pretrained(root)
    outside = tmp_path / "outside"
    outside.mkdir()
    return root, outside


@pytest.mark.parametrize(
    "inside",
    ["ssni_config.json", "diffusion/unet/config.json", "diffusion/unet/diffusion_pytorch_model.safetensors",
     "diffusion/scheduler/scheduler_config.json"],
)  # fmt: skip
def test_a_file_linked_outside_the_folder_is_refused(saved_defence_and_outside, inside):
    done = attempt("malicious", f"SSNIPreprocessor.from_pretrained: {inside} a link outside the folder")
    root, outside = saved_defence_and_outside
    link = root / inside
    target = outside / link.name
    shutil.copyfile(link, target)  # a valid file, just not inside: the path, not the content, is refused
    link.unlink()
    link.symlink_to(target)
    message = f"{str(link)!r} leads to {str(target)!r}, outside the folder {str(root)!r}; refused."
    with pytest.raises(ValueError) as info:
        SSNIPreprocessor.from_pretrained(root)
    assert message in str(info.value), str(info.value)
    done("refused", error="ValueError", file_created=False)


def test_a_unet_folder_linked_outside_is_refused(saved_defence_and_outside):
    root, outside = saved_defence_and_outside
    shutil.move(root / "diffusion" / "unet", outside / "unet")
    (root / "diffusion" / "unet").symlink_to(outside / "unet", target_is_directory=True)
    with pytest.raises(ValueError, match="outside the folder"):
        SSNIPreprocessor.from_pretrained(root)


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
@pytest.mark.parametrize("inside", ["ssni_config.json", "diffusion/unet/config.json"])
def test_a_device_file_is_refused_without_reading_it(saved_defence_and_outside, inside):
    """/dev/zero never ends: reading it as JSON would hang; it is refused before it is opened."""
    done = attempt("malicious", f"SSNIPreprocessor.from_pretrained: {inside} a link to /dev/zero")
    root, _ = saved_defence_and_outside
    link = root / inside
    link.unlink()
    link.symlink_to("/dev/zero")
    with no_hang(30), pytest.raises(ValueError, match=re.escape(f"{str(link)!r} leads to '/dev/zero', outside")):
        SSNIPreprocessor.from_pretrained(root)
    done("refused", error="ValueError", file_created=False)


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_a_device_file_in_a_model_folder_is_refused(tmp_path):
    root = tmp_path / "model"
    DiffusionModel(make_tiny_unet()).save_pretrained(root)
    config = root / "unet" / "config.json"
    config.unlink()
    config.symlink_to("/dev/zero")
    message = f"name_or_path: {str(config)!r} is not a regular file (a device, FIFO or folder); refused."
    with no_hang(30), pytest.raises(ValueError, match=re.escape(message)):
        DiffusionModel.from_pretrained(root)


# ------------------------------------------------------------------------------------------------- --classifier
@pytest.mark.parametrize(
    "spec,message",
    [
        ("os:system", "--classifier 'os:system': 'os' is a standard-library module, not a classifier factory"),
        ("subprocess:run", "--classifier 'subprocess:run': 'subprocess' is a standard-library module"),
        ("torch:zeros", "--classifier 'torch:zeros': FACTORY must be a Python function or a torch.nn.Module class, "
         "got builtin_function_or_method"),
        ("torch.nn:Linear", "--classifier 'torch.nn:Linear': FACTORY must take no required arguments, it needs "
         "['in_features', 'out_features']"),
        ("numpy:ndarray", "--classifier 'numpy:ndarray': FACTORY must be a Python function or a torch.nn.Module class"),
    ],
)  # fmt: skip
def test_classifier_factory_is_checked_before_it_is_called(spec, message):
    done = attempt("malicious", f"art-ssni evaluate --classifier {spec}")
    from art_ssni.cli_args import CLIError, load_factory

    with pytest.raises(CLIError) as info:
        load_factory(spec)
    assert message in str(info.value), str(info.value)
    done("refused", error="CLIError", file_created=False)


def test_classifier_factory_must_return_a_module(tmp_path, monkeypatch):
    from art_ssni.cli_args import CLIError, load_factory

    (tmp_path / "my_factories.py").write_text(
        "import torch\n"
        "def good():\n    return torch.nn.Flatten()\n"
        "def bad():\n    return 'not a model'\n"
        "def needs(width):\n    return torch.nn.Linear(width, 2)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert isinstance(load_factory("my_factories:good"), torch.nn.Flatten)
    with pytest.raises(CLIError, match=r"FACTORY\(\) returned a str, not a torch.nn.Module"):
        load_factory("my_factories:bad")
    with pytest.raises(CLIError, match=r"FACTORY must take no required arguments, it needs \['width'\]"):
        load_factory("my_factories:needs")
