"""`fcn_keras.memory`: the resident set now, its high-water mark and the mark's reset (Linux /proc).

Skipped where /proc/self/status is absent. Allocating and touching a 100 MB
NumPy array must raise the resident set by about that much (80 MB at least:
the allocator may reuse freed pages) and the mark with it. The kernel folds
each thread's cached page counts into the process's counters lazily, so the
mark may trail `VmRSS` by a few pages (measured: 112 KiB); `SLACK` allows 4 MB.
The allocation checks run in a fresh interpreter: in a process that has already
freed gigabytes (a test worker after the export tests), an allocator may hand
the array pages that are still resident, and the resident set does not move.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fcn_keras import memory as memory_module
from fcn_keras.memory import resident_bytes
from fcn_keras.serve_load import process_rss

MB = 10**6
SLACK = 4 * MB  # the mark may trail VmRSS by a few cached pages (see the module docstring)
pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")


# fcn_keras.memory loaded from its file, without the package (whose import loads TensorFlow).
IMPORT_MEMORY = ("import importlib.util; spec = importlib.util.spec_from_file_location('memory', "
                 f"{memory_module.__file__!r}); memory = importlib.util.module_from_spec(spec); "
                 "spec.loader.exec_module(memory)")  # fmt: skip


def _fresh(body):
    """Run `body` (indented test code using np, MB, SLACK and fcn_keras.memory) in a new interpreter."""
    code = (f"{IMPORT_MEMORY}\nimport numpy as np\n"
            "call_peak, peak_resident_bytes = memory.call_peak, memory.peak_resident_bytes\n"
            "reset_peak, resident_bytes = memory.reset_peak, memory.resident_bytes\n"
            f"MB, SLACK, IMPORT_MEMORY = {MB}, {SLACK}, {IMPORT_MEMORY!r}\n" + textwrap.dedent(body))  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]


def test_resident_and_peak_follow_an_allocation():
    _fresh("""
        before = resident_bytes()
        assert 10 * MB < before < 2**40  # a Python process with NumPy, and below a terabyte
        array = np.ones(100 * MB, dtype=np.uint8)  # np.ones writes every page: they become resident
        now = resident_bytes()
        assert now - before >= 80 * MB, (before, now)
        assert peak_resident_bytes() >= now - SLACK
        del array
        if reset_peak():  # the mark comes down to about the resident set after the array is freed
            assert resident_bytes() - SLACK <= peak_resident_bytes() <= resident_bytes() + 50 * MB
            assert peak_resident_bytes() < now - 50 * MB
    """)


def test_a_child_reports_its_own_peak_not_its_parents():
    """Linux carries `ru_maxrss` across fork and exec; the mark read here is the child's own."""
    _fresh("""
        import subprocess, sys
        big = np.ones(1000 * MB, dtype=np.uint8)  # this process peaks at over 1 GB
        del big
        child = f"{IMPORT_MEMORY}; print(memory.peak_resident_bytes(), memory.resident_bytes())"
        out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True)
        peak, now = map(int, out.stdout.split())
        assert now - SLACK <= peak < 300 * MB, (peak, now)  # a bare interpreter's, not 1 GB
    """)


def test_another_process_and_serve_load_figure():
    child = subprocess.Popen([sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(30)"],
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert child.stdout.readline().strip() == "ready"  # started: its interpreter is resident
        size = resident_bytes(child.pid)
        assert 1 * MB < size < 1000 * MB  # a bare interpreter
        assert process_rss(child.pid) == pytest.approx(size / 2**20, abs=5)  # MiB, one decimal
    finally:
        child.kill()
        child.wait()
    assert resident_bytes(child.pid) is None and process_rss(child.pid) is None  # ended


def test_call_peak_sees_a_freed_allocation():
    """A call that allocates 100 MB and frees it before returning: the resident set is back where it
    was, the call's peak is not (when the mark can be reset; otherwise it counts from the earlier mark)."""
    _fresh("""
        big = np.ones(150 * MB, dtype=np.uint8)  # an earlier, larger peak the reset must not let hide the call's
        del big

        def step():
            array = np.ones(100 * MB, dtype=np.uint8)
            return int(array[::4096].sum())

        peak = call_peak(step)
        assert peak["result"] == len(range(0, 100 * MB, 4096)) and peak["seconds"] > 0
        if peak["reset"]:
            assert 80 * MB <= peak["peak_delta_bytes"] <= 150 * MB, peak
            assert peak["rss_before_bytes"] > 10 * MB
        else:
            assert peak["rss_before_bytes"] is None and peak["peak_delta_bytes"] >= 0
    """)
