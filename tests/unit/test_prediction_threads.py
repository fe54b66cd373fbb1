"""The prediction threads (`TrackedExecutor`): `concurrent.futures` calls and `LoopJob`s, whose answers
come back to the event loop in one step, on the same threads."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from drum.serving.admission import Admission, Busy, TrackedExecutor


def test_a_loop_job_answers_on_the_loop_from_the_thread_that_ran_submitted_calls():
    async def main(executor: TrackedExecutor) -> tuple[str, str, str]:
        loop = asyncio.get_running_loop()
        loaded = executor.submit(lambda: threading.current_thread().name).result(5)
        job = executor.submit_to_loop(loop, lambda a, b: (threading.current_thread().name, a + b), "x", "y")
        name, joined = await job.future
        return loaded, name, joined

    with TrackedExecutor(1, thread_name_prefix="drum-predict") as executor:
        loaded, name, joined = asyncio.run(main(executor))
    assert loaded == name and name.startswith("drum-predict")  # the model's one thread, as at load time
    assert joined == "xy"


def test_a_loop_jobs_error_is_raised_where_it_is_awaited():
    async def main(executor: TrackedExecutor) -> None:
        job = executor.submit_to_loop(asyncio.get_running_loop(), lambda: 1 / 0)
        await job.future

    with TrackedExecutor(1) as executor, pytest.raises(ZeroDivisionError):
        asyncio.run(main(executor))


def test_a_queued_job_cancelled_never_runs_and_a_running_one_cannot_be_cancelled():
    started, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def hold() -> str:
        started.set()
        release.wait(5)
        ran.append("held")
        return "held"

    async def main(executor: TrackedExecutor) -> tuple[bool, bool, str]:
        loop = asyncio.get_running_loop()
        running = executor.submit_to_loop(loop, hold)
        queued = executor.submit_to_loop(loop, ran.append, "queued")
        await loop.run_in_executor(None, started.wait, 5)
        assert executor.waiting()
        cancelled_queued, cancelled_running = queued.cancel(), running.cancel()
        release.set()
        answer = await running.future
        assert queued.future.cancelled()
        return cancelled_queued, cancelled_running, answer

    with TrackedExecutor(1) as executor:
        assert asyncio.run(main(executor)) == (True, False, "held")
    assert ran == ["held"]


def test_admission_holds_a_slot_until_the_loop_job_ends():
    release = threading.Event()

    async def main(admission: Admission) -> list[int]:
        loop = asyncio.get_running_loop()
        seen = []
        job = admission.submit_to_loop(loop, release.wait, 5)
        seen.append(admission.in_flight)
        with pytest.raises(Busy):
            admission.submit_to_loop(loop, print)
        release.set()
        await job.future
        seen.append(admission.in_flight)
        return seen

    with TrackedExecutor(1) as executor:
        assert asyncio.run(main(Admission(executor, capacity=1))) == [1, 0]


def test_shutdown_withdraws_queued_work_and_joins_the_threads():
    release = threading.Event()
    with TrackedExecutor(1) as executor:
        first = executor.submit(release.wait, 5)
        queued = executor.submit(print, "never")
        time.sleep(0.05)
        assert executor.wedged_for(0.01)  # its only thread has been on one job for longer
        threading.Timer(0.1, release.set).start()
        executor.shutdown(wait=True, cancel_futures=True)
    assert first.result() is True and queued.cancelled()
    assert not any(t.is_alive() for t in executor._workers)  # noqa: SLF001
    with pytest.raises(RuntimeError):
        executor.submit(print)
