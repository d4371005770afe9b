"""The worker process gives freed heap pages back a moment after its job pool goes idle."""

from __future__ import annotations

import asyncio

from bot.ops.serve import HeapTrimmer


async def test_a_trim_runs_once_a_moment_after_idle_and_not_while_jobs_run() -> None:
    idle = True
    trims: list[int] = []
    trimmer = HeapTrimmer(lambda: idle, delay=0.01)
    assert trimmer._trim is not None  # glibc, as on the images the bot runs on
    trimmer._trim(0)  # the real call is harmless

    def record(pad: int) -> int:
        trims.append(pad)
        return 1

    trimmer._trim = record
    for _ in range(3):  # several jobs finishing in a row: one trim
        trimmer.soon()
    await asyncio.sleep(0.05)
    assert trims == [0]
    idle = False  # a job started again before the moment passed: no trim while it runs
    trimmer.soon()
    await asyncio.sleep(0.05)
    assert trims == [0]
    idle = True
    trimmer.soon()
    await asyncio.sleep(0.05)
    assert trims == [0, 0]
