"""Loading the zoo never imports its trainer (training code, ART's attacks, tqdm bars), checked in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys

from art_ssni import zoo


def test_loading_the_zoo_never_imports_the_trainer():
    code = (
        "import sys, art_ssni.zoo as z; z.load('digits'); z.reference_stats('digits'); z.metrics('digits'); "
        "import json; print(json.dumps(sorted(m for m in sys.modules if m.startswith('art_ssni.zoo'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert "art_ssni.zoo" in loaded and "art_ssni.zoo.files" in loaded  # the probe saw the zoo's own modules
    assert "art_ssni.zoo.train" not in loaded and "art_ssni.zoo.measure" not in loaded
    assert callable(zoo.train_zoo)  # still reachable: imported on first use
