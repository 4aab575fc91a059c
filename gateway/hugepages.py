"""Huge pages for the process's long-lived heap (Linux).

With thousands of tenants loaded, the heap holds hundreds of MB of small objects (each
tenant's runtime, channels and compiled flows) and a turn reads a few dozen of them, each on
another 4 KiB page: a processor's TLB (typically a few thousand entries) covers some 10 MB of 4 KiB pages,
so almost every one of those reads walks the page tables first, which costs most in a virtual
machine (two levels of tables). Backed by 2 MiB pages, the same heap fits the TLB. CPython's
object allocator maps its arenas 1 MiB at a time, which transparent huge pages in `madvise`
mode (the usual default) never back; `madvise(MADV_COLLAPSE)` (Linux 6.1) asks the kernel to
rebuild a range with huge pages now, whatever that mode. docs/benchmarks.md, item 12, has
the measurements.

`maintain` runs in the serving process: whenever its resident memory has grown by
`grow` bytes since the last time (tenants loaded), it collapses the anonymous writable
mappings, in a thread. Where the kernel can't (another OS, an older kernel, THP `never`), it
stops after the first try and says so once.
"""
from __future__ import annotations

import asyncio
import ctypes
import errno
import logging
import os
import sys
import time
from typing import Callable, NamedTuple

log = logging.getLogger("causette.hugepages")

HUGE = 2 << 20            # x86-64 and arm64 (4 KiB base pages) PMD size
MADV_COLLAPSE = 25
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EPERM, errno.EOPNOTSUPP}


class Collapse(NamedTuple):
    """What one pass did: bytes asked for, bytes the kernel refused (busy or short of
    memory: tried again next pass), seconds spent; `unsupported` when the kernel can't."""
    asked: int
    failed: int
    seconds: float
    unsupported: bool = False


def heap_ranges(maps: str) -> list[tuple[int, int]]:
    """The 2 MiB-aligned parts of the private anonymous writable mappings listed in
    `maps` (the text of /proc/self/maps): CPython's arenas, malloc's heap, threads' stacks.
    Files, the main stack and shared memory are left alone; the kernel itself refuses a range
    mostly not in memory (a thread's stack), so a collapse does not grow the process."""
    out = []
    for line in maps.splitlines():
        parts = line.split()
        if len(parts) < 5 or parts[1] != "rw-p":
            continue
        if len(parts) > 5 and parts[5] != "[heap]":
            continue
        lo, hi = (int(x, 16) for x in parts[0].split("-"))
        start, end = (lo + HUGE - 1) & ~(HUGE - 1), hi & ~(HUGE - 1)
        if end > start:
            out.append((start, end))
    return out


def _madvise() -> Callable[[int, int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


def collapse(ranges: list[tuple[int, int]] | None = None) -> Collapse:
    """Ask the kernel to back `ranges` (default: this process's heap) with huge pages.
    Blocking (the kernel copies the pages: ~1 s for 350 MB here); ctypes releases the GIL,
    so run it in a thread."""
    madvise = _madvise()
    if madvise is None:
        return Collapse(0, 0, 0.0, unsupported=True)
    t0 = time.perf_counter()
    if ranges is None:
        with open("/proc/self/maps") as f:
            ranges = heap_ranges(f.read())
    asked = failed = refused = 0
    for start, end in ranges:
        asked += end - start
        if madvise(start, end - start, MADV_COLLAPSE) == 0:
            continue
        err = ctypes.get_errno()
        if err == errno.ENOSYS:
            return Collapse(asked, asked, time.perf_counter() - t0, unsupported=True)
        failed += end - start
        # EINVAL: a mapping that can't take huge pages (a library marked it MADV_NOHUGEPAGE,
        # a special mapping) or a kernel without MADV_COLLAPSE; EAGAIN / ENOMEM: busy or
        # short of memory, tried again next pass.
        refused += (end - start) if err in _UNSUPPORTED else 0
    return Collapse(asked, failed, time.perf_counter() - t0,
                    unsupported=bool(asked) and refused == asked)


def huge_bytes(pid: int | str = "self") -> int:
    """Bytes of a process's anonymous memory on huge pages (0 where unknown)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("AnonHugePages:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


async def maintain(stop: asyncio.Event, *, interval: float = 5.0, grow: int = 32 << 20,
                   report: Callable[[Collapse], None] | None = None) -> None:
    """Collapse the heap each time resident memory has grown by `grow` bytes since the last
    pass (the first pass once it passes `grow`), checking every `interval` seconds."""
    done = 0
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), interval)
            return
        except asyncio.TimeoutError:
            pass
        rss = rss_bytes()
        if rss - done < grow:
            continue
        res = await asyncio.to_thread(collapse)
        done = rss
        if report is not None:
            report(res)
        if res.unsupported:
            log.info("huge pages: the kernel cannot collapse this heap (MADV_COLLAPSE needs "
                     "Linux 6.1 and transparent huge pages not set to never); left as it is")
            return
        log.info("huge pages: %d MB of heap collapsed in %.2f s (%d MB on huge pages now)",
                 (res.asked - res.failed) >> 20, res.seconds, huge_bytes() >> 20)
