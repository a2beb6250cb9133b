"""Shared helpers of the reliability tests (properties, faults, security, memory bound).

* Hypothesis profiles: ``ci`` (default, bounded and derandomized so CI stays short and reproducible) and
  ``thorough`` (the larger documented run), selected by the environment variable ``HYPOTHESIS_PROFILE``.
* :func:`record` appends one JSON line per example / fault / malicious file to the file named by
  ``ART_SSNI_RELIABILITY_LOG`` (when set). ``scripts/reliability_report.py`` sets it, runs these tests and turns
  the log into ``docs/reliability.md``: every figure there is counted from a real run, none is typed.
* :func:`no_hang`: a wall-clock alarm so that a hang fails the test instead of stalling CI.
* :func:`expect_clean_error`: the contract of every public entry point on bad input.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import threading
from collections.abc import Iterable, Iterator

from hypothesis import HealthCheck, settings

LOG_ENV = "ART_SSNI_RELIABILITY_LOG"
PROFILE_ENV = "HYPOTHESIS_PROFILE"
PROFILES = {"ci": 30, "thorough": 200}

for _name, _examples in PROFILES.items():
    settings.register_profile(
        f"art-ssni-{_name}",
        max_examples=_examples,
        deadline=None,  # timings on a shared 2-core machine vary; hangs are caught by no_hang instead
        database=None,  # write nothing into the repository
        derandomize=_name == "ci",  # CI: the same examples every run
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
        print_blob=True,
    )

PROFILE_NAME = os.environ.get(PROFILE_ENV, "ci")
if PROFILE_NAME not in PROFILES:
    raise ValueError(f"{PROFILE_ENV} must be one of {sorted(PROFILES)}, got {PROFILE_NAME!r}.")
PROFILE = settings.get_profile(f"art-ssni-{PROFILE_NAME}")
"""Decorate every ``@given`` test with this (``@PROFILE``)."""

_lock = threading.Lock()


def record(kind: str, name: str, outcome: str, **details: object) -> None:
    """Log one tried example (``kind="property"``), injected fault (``"fault"``) or malicious file (``"malicious"``).

    ``outcome`` is what happened: ``"result"`` (a correct result), an exception class name (a clean refusal), or
    a short phrase for faults (``"refused"``). No-op unless ``ART_SSNI_RELIABILITY_LOG`` is set.
    """
    path = os.environ.get(LOG_ENV)
    if not path:
        return
    line = json.dumps({"kind": kind, "name": name, "outcome": outcome, **details}, default=str)
    with _lock, open(path, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")


@contextlib.contextmanager
def no_hang(seconds: float = 120.0) -> Iterator[None]:
    """Fail with ``TimeoutError`` when the body runs longer than ``seconds`` (main thread, Unix; else no-op)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def _alarm(signum: int, frame: object) -> None:
        raise TimeoutError(f"no result after {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def names_parameter(err: BaseException, names: Iterable[str]) -> bool:
    """Whether the message of ``err`` names one of the parameters ``names`` as a word (``x``, ``t_star``...)."""
    message = str(err)
    return any(re.search(rf"(?<!\w){re.escape(name)}(?![\w])", message) for name in names)


def expect_clean_error(err: BaseException, names: Iterable[str]) -> str:
    """Assert ``err`` is a ``ValueError``/``TypeError`` naming one of ``names``; return its class name."""
    names = list(names)
    assert isinstance(err, (ValueError, TypeError)), f"{type(err).__name__} instead of ValueError/TypeError: {err}"
    assert names_parameter(err, names), f"message does not name any of {names}: {err}"
    return type(err).__name__


def attempt(kind: str, name: str):
    """Log that a fault / malicious input is about to be tried; returns ``done(outcome, **details)`` to log its fate.

    The report counts attempts and outcomes separately: an attempt without an outcome (the test failed before
    ``done``) shows as NOT SURVIVED, so a failure can never vanish from the figures.
    """
    record(f"{kind}-attempt", name, "attempted")

    def done(outcome: str, **details: object) -> None:
        record(kind, name, outcome, **details)

    return done
