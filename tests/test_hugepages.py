"""The heap's huge pages (gateway.hugepages): which mappings are collapsed, and that the kernel
of this machine really backs them with 2 MiB pages afterwards."""
import asyncio
import ctypes
import mmap
import platform
import sys
from pathlib import Path

import pytest

from gateway import hugepages
from gateway.hugepages import HUGE, Collapse, collapse, heap_ranges, huge_bytes

MAPS = """\
55d0c0000000-55d0c0021000 r--p 00000000 08:01 1234   /usr/bin/python3.11
55d0c0400000-55d0c0a00000 rw-p 00000000 00:00 0      [heap]
7f0000000000-7f0000500000 rw-p 00000000 00:00 0
7f0000500000-7f0000600000 rw-p 00000000 00:00 0
7f1000000000-7f1000100000 rw-p 00000000 00:00 0
7f2000000000-7f2000400000 rw-s 00000000 00:05 99     /dev/shm/x
7f3000000000-7f3000400000 rw-p 00000000 08:01 42     /var/lib/data.bin
7f4000000000-7f4000400000 r--p 00000000 00:00 0
7ffc00000000-7ffc00400000 rw-p 00000000 00:00 0      [stack]
"""


def test_only_private_anonymous_writable_memory_is_collapsed_in_whole_huge_pages():
    assert heap_ranges(MAPS) == [
        (0x55d0c0400000, 0x55d0c0a00000),     # [heap]: 4 MiB-aligned start, 6 MiB
        (0x7f0000000000, 0x7f0000400000),     # 5 MiB mapping: its two whole huge pages
    ]
    # the 1 MiB mapping holds no whole huge page; shared, file-backed, read-only and the
    # stack are never touched
    for start, end in heap_ranges(MAPS):
        assert start % HUGE == 0 and end % HUGE == 0 and end > start


def _thp_mode() -> str:
    p = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    text = p.read_text() if p.exists() else ""
    return text.split("[", 1)[1].split("]", 1)[0] if "[" in text else ""


def test_the_kernel_backs_a_collapsed_range_with_huge_pages():
    region = mmap.mmap(-1, 8 * HUGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    region.write(b"\x01" * len(region))                  # touched: 16 MiB of small pages
    buf = ctypes.c_char.from_buffer(region)
    start = (ctypes.addressof(buf) + HUGE - 1) & ~(HUGE - 1)
    del buf
    before = huge_bytes()
    res = collapse([(start, start + 4 * HUGE)])
    release = tuple(int(x) for x in platform.release().split(".")[:2])
    if sys.platform.startswith("linux") and release >= (6, 1) and _thp_mode() in ("always", "madvise"):
        assert not res.unsupported and res.failed == 0 and res.asked == 4 * HUGE
        assert huge_bytes() - before >= 4 * HUGE
    else:       # where the kernel can't, the answer says so instead of failing
        assert res.unsupported
    assert region[:4] == b"\x01" * 4 and region[-1:] == b"\x01"       # contents kept
    region.close()


async def test_maintain_collapses_when_the_heap_has_grown_and_stops_on_request():
    passes: list[Collapse] = []
    stop = asyncio.Event()
    task = asyncio.create_task(hugepages.maintain(stop, interval=0.02, grow=1, report=passes.append))
    for _ in range(200):
        if passes:
            break
        await asyncio.sleep(0.02)
    assert passes and passes[0].asked > 0
    n = len(passes)
    stop.set()
    await asyncio.wait_for(task, 2)
    assert task.done() and not task.cancelled()
    assert len(passes) in (n, n + 1)


async def test_maintain_waits_for_growth():
    passes: list[Collapse] = []
    stop = asyncio.Event()
    task = asyncio.create_task(hugepages.maintain(stop, interval=0.01, grow=1 << 40, report=passes.append))
    await asyncio.sleep(0.1)
    stop.set()
    await asyncio.wait_for(task, 2)
    assert passes == []           # a terabyte of growth never came: nothing was collapsed


@pytest.mark.parametrize("value,expected", [("0", False), ("off", False), ("1", True), ("", True)])
def test_the_setting_comes_from_the_environment(monkeypatch, value, expected):
    from gateway.settings import Settings
    if value:
        monkeypatch.setenv("CAUSETTE_HUGEPAGES", value)
    else:
        monkeypatch.delenv("CAUSETTE_HUGEPAGES", raising=False)
    assert Settings.from_env().hugepages is expected
