"""Run the reliability tests and write ``docs/reliability.md`` from what the run recorded.

    python scripts/reliability_report.py                   # the larger "thorough" hypothesis profile (a few minutes)
    python scripts/reliability_report.py --profile ci      # the CI profile (about a minute)

The script runs ``pytest`` on the reliability test files with ``HYPOTHESIS_PROFILE`` set and
``ART_SSNI_RELIABILITY_LOG`` pointing to a fresh log; the tests append one JSON line per example tried, fault
injected, malicious file offered and UNet bound measured (``tests/_reliability.py``). Every figure of the page is
counted from that log and from pytest's JUnit XML report of the same run -- none is typed by hand. The page states
the pytest outcome; a failing run is published as failing.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TEST_FILES = [
    "tests/test_properties.py",
    "tests/test_faults.py",
    "tests/test_security.py",
    "tests/test_memory_bound.py",
    "integration_tests/test_torchrun_leaderboard.py::test_killed_run_resumes_and_matches",
]


FOUND = [
    "`purify` / `score_norms`: integer, float16/float64, wrong-channel, wrong-size or `meta` inputs crashed inside the "
    "UNet (`RuntimeError`, `NotImplementedError`); NaN inputs were purified silently into NaN outputs.",
    "`select_timesteps` / `sigmoid` / `linear`: NaN norms became arbitrary integer levels without an error; numpy "
    "norms, a dict as reference, `t_star <= 0` or `num_timesteps = 0` gave `AttributeError`s or meaningless levels.",
    "SSNI-N / SSNI-L: a valid but tiny reference std or span (or bounds near the float range) gave NaN levels in "
    "float32 (found by the thorough run); levels are now computed in float64 with a normal divisor.",
    "`DiffusionModel.from_pretrained`: a UNet config that adds blocks to the saved weights loaded a half-random model "
    "with only a warning; truncated or corrupt safetensors, corrupt JSON and shape mismatches surfaced as diffusers "
    "`OSError` / `RuntimeError` (a JSON-list config even as a failed connection to huggingface.co).",
    "`ReferenceStats.from_json`: a huge JSON integer raised `OverflowError`, deeply nested JSON `RecursionError`.",
    "`SSNIPreprocessor`: `meta` tensors raised `RuntimeError`; big-endian arrays were refused with a message not "
    "naming `x`; `from_pretrained` let bad saved values and a malformed `diffusion` entry through without the file.",
    "`zoo.load` / the zoo classifier: corrupt or incomplete JSON, truncated safetensors and architecture mismatches "
    "raised `JSONDecodeError` / `KeyError` / `SafetensorError` / `RuntimeError` without the file name.",
    "`art-ssni calibrate` scored every image before finding that `--out` could not be written.",
    "Scoring made UNet calls of `batch_size x T'` rows: the memory bound did not hold for score estimation.",
    "Issue 24 (a careless or hostile user): a submitted leaderboard name reached leaderboard.md as raw HTML; saved "
    'folders followed links to files outside them (and would read `/dev/zero` forever); `apply_predict: "false"` '
    "loaded as True and wrongly typed fields gave Python internals; broken scheduler / UNet values failed later "
    'with unrelated messages; `device_type` "tpu" ran on the CPU; `--classifier os:system` was called; '
    "`--t-star 5000`, `--eta 2`, `--eps 5` and `--n-images 100000` ran (or failed after a defence had started).",
]


def run_tests(profile: str, files: list[str], log: Path, junit: Path) -> tuple[int, float, str]:
    env = {
        **os.environ,
        "HYPOTHESIS_PROFILE": profile,
        "ART_SSNI_RELIABILITY_LOG": str(log),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        "MKL_NUM_THREADS": os.environ.get("MKL_NUM_THREADS", "1"),
    }
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--junitxml={junit}", *files]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    tail = "\n".join(done.stdout.strip().splitlines()[-15:])
    return done.returncode, seconds, tail


def read_junit(junit: Path) -> dict[str, Any]:
    suites = ET.parse(junit).getroot()
    suite = suites if suites.tag == "testsuite" else suites.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    failed = [
        f"{c.get('classname')}::{c.get('name')}"
        for c in cases
        if c.find("failure") is not None or c.find("error") is not None
    ]
    skipped = [f"{c.get('classname')}::{c.get('name')}" for c in cases if c.find("skipped") is not None]
    per_file: dict[str, list[float]] = collections.defaultdict(list)
    for case in cases:
        per_file[case.get("classname", "").split(".")[-1]].append(float(case.get("time", 0.0)))
    return {
        "tests": len(cases),
        "failed": failed,
        "skipped": skipped,
        "per_file": {name: (len(times), sum(times)) for name, times in sorted(per_file.items())},
    }


def read_log(log: Path) -> list[dict[str, Any]]:
    if not log.is_file():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def versions() -> dict[str, str]:
    import hypothesis
    import torch

    from art_ssni import __version__

    return {
        "art_ssni": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "hypothesis": hypothesis.__version__,
        "platform": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
    }


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def render(profile: str, examples: int, status: int, seconds: float, junit: dict[str, Any], entries: list[dict]) -> str:
    props: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    tried: dict[str, list[str]] = {"fault": [], "malicious": [], "scan": []}  # in the order they were attempted
    fate: dict[str, dict[str, dict]] = {"fault": {}, "malicious": {}, "scan": {}}
    bounds: list[dict] = []
    for entry in entries:
        kind = entry["kind"]
        if kind == "property":
            props[entry["name"]][entry["outcome"]] += 1
        elif kind.endswith("-attempt") and kind[: -len("-attempt")] in tried:
            tried[kind[: -len("-attempt")]].append(entry["name"])
        elif kind in fate:
            fate[kind][entry["name"]] = entry
        elif kind == "bound":
            bounds.append(entry)
    lost = {"outcome": "NOT SURVIVED (the test failed)", "file_created": None}
    faults = [{"name": name, **fate["fault"].get(name, lost)} for name in tried["fault"]]
    malicious = [{"name": name, **fate["malicious"].get(name, lost)} for name in tried["malicious"]]
    n_examples = sum(sum(c.values()) for c in props.values())
    survived = sum(1 for name in tried["fault"] if name in fate["fault"])
    refused = sum(1 for m in malicious if m["name"] in fate["malicious"] and m.get("file_created") is False)
    outcome = "passed" if status == 0 else f"FAILED (pytest exit status {status})"

    out = [
        "# Reliability and security figures",
        "",
        "<!-- Generated by scripts/reliability_report.py from a real run; do not edit by hand. -->",
        "",
        f"Generated {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')} by "
        f"`python scripts/reliability_report.py --profile {profile}`: hypothesis profile **{profile}** "
        f"(`max_examples={examples}` per property test), {junit['tests']} tests, **{outcome}** in {seconds:.0f} s.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()) + ".",
        "",
        "## Summary",
        "",
        *_table(
            ["what", "count"],
            [
                ["property-test examples executed", n_examples],
                ["properties (entry points) fuzzed", len(props)],
                ["faults injected", len(faults)],
                [
                    "faults survived (one clear error naming the file / refused before any work / previous file"
                    " intact / same JSON after a restart)",
                    survived,
                ],
                ["malicious inputs offered", len(malicious)],
                ["malicious inputs refused, payload never executed", refused],
                [
                    "source scans of art_ssni/ clean (no unpickling, eval/exec, trust_remote_code)",
                    f"{sum(1 for n in tried['scan'] if n in fate['scan'])} of {len(tried['scan'])}",
                ],
                ["UNet row-bound checks", len(bounds)],
                ["tests failed", len(junit["failed"])],
                ["tests skipped", len(junit["skipped"])],
            ],
        ),
        "",
    ]
    if junit["failed"]:
        out += ["**Failing tests:**", "", *[f"- `{name}`" for name in junit["failed"]], ""]
    out += [
        "## Property-based tests (hypothesis)",
        "",
        "Every example is either a correct result (shape, float32, range within `clip_values`, input unchanged) or a",
        "`ValueError` / `TypeError` whose message names the parameter; anything else fails the run. Inputs: arbitrary",
        "shapes, dtypes (float16/32/64, ints, bool, complex), NaN/inf, out-of-range values, empty and large batches,",
        "non-contiguous, channels-last, big-endian and `meta`-device (wrong device) arrays, arbitrary JSON and bytes,",
        "arbitrary command lines. *result*: a checked correct result; an exception name: a clean refusal.",
        "",
    ]
    outcomes = sorted({o for c in props.values() for o in c})
    rows = [[f"`{name}`", sum(c.values()), *[c.get(o, 0) for o in outcomes]] for name, c in sorted(props.items())]
    out += _table(["property", "examples", *outcomes], rows)
    out += [
        "",
        "## Fault injection",
        "",
        "Each fault must give one clear error naming the file (`ValueError` for a damaged file, `FileNotFoundError`",
        "for a missing one), leave the previous file intact (atomic writes), or resume to the same results.",
        "",
    ]
    out += _table(["fault", "outcome"], [[f["name"], f["outcome"]] for f in faults])
    out += [
        "",
        "## Malicious files",
        "",
        "Each file carries a pickle whose `__reduce__` creates a file when unpickled; a control run shows an unsafe",
        "`torch.load(weights_only=False)` does execute it. *file created: no* is checked after every refusal.",
        "",
    ]
    out += _table(
        ["input", "outcome", "error", "file created"],
        [[m["name"], m["outcome"], m.get("error", ""), "yes" if m.get("file_created") else "no"] for m in malicious],
    )
    out += [
        "",
        "## Memory safety valve",
        "",
        "`SSNIPreprocessor(batch_size=8)`: every UNet call of scoring, purification (with EOT copies) and checkpointed",
        "backward, recorded by a forward hook on the UNet, whatever the input batch.",
        "",
    ]
    out += _table(
        ["run", "UNet calls", "max rows per call"],
        [[f"`{b['name']}`", b.get("calls", ""), b.get("value", "")] for b in bounds],
    )
    out += [
        "",
        "## What these tests found",
        "",
        "Bugs the property, fault and security tests exposed while they were written (each is now a regression",
        "example or case in the tests above):",
        "",
        *[f"- {item}" for item in FOUND],
        "",
        "## Test files",
        "",
        *_table(["file", "tests", "seconds"], [[f"`{k}`", n, f"{t:.1f}"] for k, (n, t) in junit["per_file"].items()]),
        "",
        "## Reproduce",
        "",
        "- CI (tox) runs these tests with the bounded, derandomized `ci` profile.",
        "- The larger run: `HYPOTHESIS_PROFILE=thorough python -m pytest tests/test_properties.py ...`, or this page:",
        "  `python scripts/reliability_report.py` (`--profile ci` for the short one).",
        "- What is and is not trusted: `SECURITY.md` at the repository root.",
        "",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=["ci", "thorough"], default="thorough")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "reliability.md")
    parser.add_argument("files", nargs="*", default=TEST_FILES)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "tests"))
    from _reliability import PROFILES

    with tempfile.TemporaryDirectory() as tmp:
        log, junit = Path(tmp) / "log.jsonl", Path(tmp) / "junit.xml"
        status, seconds, tail = run_tests(args.profile, args.files, log, junit)
        print(tail)
        page = render(args.profile, PROFILES[args.profile], status, seconds, read_junit(junit), read_log(log))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(page)
    print(f"wrote {args.out}")
    return status


if __name__ == "__main__":
    sys.exit(main())
