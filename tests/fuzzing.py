"""Shared settings of the property-based fuzz tests (tests/test_fuzz_*.py).

Each fuzz target has a default number of cases, chosen so that the whole fuzz set runs in
well under a minute on a 2-core machine as part of ``bin/test``. A long run sets
``CELLBUS_FUZZ_EXAMPLES=N`` to run N cases per target instead (the per-test timeout grows
with it)::

    CELLBUS_FUZZ_EXAMPLES=20000 bin/test tests/test_fuzz_wire.py tests/test_fuzz_http.py

Every target counts the cases it really ran; ``pytest_terminal_summary`` in conftest.py
prints the counts (and the gateway and broker memory measured around the HTTP fuzz) in one
line at the end of the run.
"""

from __future__ import annotations

import collections
import os
from pathlib import Path

from hypothesis import HealthCheck, settings

ENV = "CELLBUS_FUZZ_EXAMPLES"

#: Cases each target ran in this pytest process, by target name.
COUNTS: collections.Counter[str] = collections.Counter()
#: Measurements to report at the end (name -> text), e.g. memory before and after.
NOTES: dict[str, str] = {}

settings.register_profile(
    "cellbus-fuzz",
    deadline=None,  # real processes and a loaded CI machine: time is not the property
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much],
    print_blob=True,
)


def examples(default: int) -> int:
    """Cases for one target: ``default``, or ``$CELLBUS_FUZZ_EXAMPLES`` when it is set."""
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return default
    try:
        n = int(raw)
    except ValueError:
        raise ValueError(f"{ENV}={raw!r}: give a number of cases per fuzz target") from None
    return max(1, n)


def timeout(default: int, seconds: float) -> float:
    """A per-test timeout for a target that takes ``seconds`` at ``default`` cases, scaled
    (generously) to the number of cases really asked for."""
    return max(seconds, seconds * examples(default) / default * 2)


def fuzz_settings(default: int, *, fixed: bool = False) -> settings:
    """Hypothesis settings for a target whose default size is ``default`` cases (exactly
    ``default`` with ``fixed``, e.g. for a warm-up, whatever a long run asks for)."""
    return settings(settings.get_profile("cellbus-fuzz"),
                    max_examples=default if fixed else examples(default))


def summary() -> list[str]:
    """The lines the end-of-run summary prints (none if no fuzz target ran)."""
    if not COUNTS:
        return []
    mode = f"{ENV}={os.environ[ENV]}" if os.environ.get(ENV) else "default sizes"
    counts = ", ".join(f"{name} {n}" for name, n in sorted(COUNTS.items()))
    lines = [f"fuzz cases run ({mode}): {sum(COUNTS.values())} in all: {counts}"]
    lines += [f"fuzz {name}: {text}" for name, text in sorted(NOTES.items())]
    return lines


def rss_kib(pid: int) -> int:
    """Resident set size of process ``pid`` in KiB, from /proc/PID/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for process {pid}")
