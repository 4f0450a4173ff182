"""Resident memory of a process, for memory figures: now, at its peak, and the peak of one call (Linux).

`resident_bytes(pid)` reads `VmRSS` of `/proc/<pid>/status` (this process by
default); `peak_resident_bytes()` is this process's high-water mark
(`VmHWM`; not `ru_maxrss`, which a process inherits from its parent); `reset_peak()` lowers that mark
to the resident set now (`/proc/self/clear_refs`), so that `call_peak(fn)` can
measure the peak of one call made after others. Where the kernel offers none
of this (not Linux, a restricted `/proc`), the readers return None or False
rather than guess.

Example:
>>> peak = call_peak(lambda: model(images))
>>> peak["peak_delta_bytes"] / 2**20  # MiB the call took at its peak
"""

import sys
import time

__all__ = ["resident_bytes", "peak_resident_bytes", "reset_peak", "call_peak"]


def _status_bytes(field, pid=None):
    """A `kB` field of `/proc/<pid>/status` (e.g. "VmRSS"), in bytes; None where absent."""
    path = "/proc/self/status" if pid is None else f"/proc/{int(pid)}/status"
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        return None
    return None


def resident_bytes(pid=None):
    """The resident set of a process now, in bytes (`VmRSS` of `/proc/<pid>/status`).

    Args:
        pid: the process id, or None for this process. Defaults to None.

    Returns:
        int bytes, or None where the file or its `VmRSS` line is absent (not
        Linux, an ended process).

    Example:
    >>> resident_bytes() / 2**20  # MiB
    612.4
    """
    return _status_bytes("VmRSS", pid)


def peak_resident_bytes():
    """This process's resident set high-water mark, in bytes.

    On Linux it is `VmHWM` of `/proc/self/status`: the mark of this process's
    own memory, which `reset_peak` lowers. Not `getrusage`'s `ru_maxrss`: Linux
    carries that across `fork` and `execve`, so a process started by a larger
    one (a benchmark's worker, a test's subprocess) reports its parent's peak
    until it exceeds it, and no reset lowers it. Elsewhere (macOS) it is
    `ru_maxrss`, the peak over the whole life of the process.

    Returns:
        int bytes, or None where neither is available (Windows).

    Example:
    >>> peak_resident_bytes() >= resident_bytes()
    True
    """
    mark = _status_bytes("VmHWM")
    if mark is not None:
        return mark
    try:
        import resource
    except ImportError:
        return None
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024  # bytes on macOS, KiB on Linux


def reset_peak():
    """Lower this process's high-water mark (`peak_resident_bytes`) to its resident set now.

    Writes `5` to `/proc/self/clear_refs` (Linux 4.0 and later).

    Returns:
        True when the mark was reset, False where the kernel does not allow it
        (then the mark still holds the process's earlier peak).

    Example:
    >>> if reset_peak():
    ...     before = resident_bytes()
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def call_peak(fn):
    """Run `fn()` once and measure how far the resident set rose above where it stood before.

    The high-water mark is reset first (`reset_peak`), so that earlier
    allocations (loading a model, say) cannot hide the call's peak; the peak
    is then the mark after the call minus the resident set just before it.
    Where the mark cannot be reset, it is the mark after the call minus the
    mark before it, which is 0 when the call stays below an earlier peak.

    Args:
        fn: the call, without arguments.

    Returns:
        Dict: `result` (what `fn` returned), `seconds` (its wall time),
        `peak_delta_bytes` (at least 0), `rss_before_bytes` (None where the
        mark was not reset), `reset` (whether it was).

    Example:
    >>> peak = call_peak(lambda: forward(batch).numpy())
    >>> peak["peak_delta_bytes"] / 2**20, peak["reset"]
    (107.2, True)
    """
    mark_before = peak_resident_bytes()
    reset = reset_peak()
    before = resident_bytes() if reset else None
    reset = reset and before is not None
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    delta = peak_resident_bytes() - (before if reset else mark_before)
    return {"result": result, "seconds": seconds, "peak_delta_bytes": max(delta, 0),
            "rss_before_bytes": before if reset else None, "reset": reset}  # fmt: skip
