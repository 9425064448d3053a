"""The job runner: a fixed number of workers pulling jobs from the store.

Each job runs in its own daemon thread (the pipeline is synchronous and CPU-bound in native
code), awaited from an asyncio task, so the HTTP side stays responsive while jobs run. A
heartbeat thread keeps the job's row fresh even through long stages without progress events.
On shutdown, jobs still running are handed back to the queue: the next start resumes them,
and the cache keeps what they had already computed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import timedelta
from typing import Any

from pydantic import TypeAdapter, ValidationError

from clusterdiv.core.cache import ModelCache
from clusterdiv.core.errors import ClusterdivError, InputError
from clusterdiv.service.execute import JobCancelled, StoreProgress, execute_job
from clusterdiv.service.jobs import JobRecord, JobStore, new_worker_name
from clusterdiv.service.schemas import JobRequest
from clusterdiv.service.settings import ServiceSettings

log = logging.getLogger("clusterdiv.service")
_REQUEST = TypeAdapter(JobRequest)
HEARTBEAT_S = 5.0


def stored_request(data: dict[str, Any]) -> Any:
    """A queued job's request; one queued before a check this server now makes at submit fails alone."""
    try:
        return _REQUEST.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) or repr(part) for part in first["loc"])  # a blank key shows as ''
        raise InputError(f"the job is no longer valid: {where}: {first['msg']}") from None


class JobRunner:
    def __init__(self, store: JobStore, settings: ServiceSettings):
        self.store = store
        self.settings = settings
        self.workers = [new_worker_name() for _ in range(settings.workers)]
        self.in_flight: dict[str, str] = {}  # job id -> worker
        self.cancel_events: dict[str, threading.Event] = {}  # job id -> set when cancelled
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------ lifecycle

    def recover(self) -> list[str]:
        return self.store.recover(max_attempts=self.settings.max_job_attempts,
                                  stale_after=timedelta(seconds=self.settings.stale_after_s),
                                  active=set(self.in_flight.values()))

    async def start(self) -> None:
        recovered = await asyncio.to_thread(self.recover)
        if recovered:
            log.warning("recovered %d interrupted job(s): %s", len(recovered), ", ".join(recovered))
        self._tasks = [asyncio.create_task(self._loop(w), name=f"worker {w}") for w in self.workers]
        self._tasks.append(asyncio.create_task(self._recover_loop(), name="recover"))

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for job_id, worker in list(self.in_flight.items()):
            self.store.release(job_id, worker)
            log.warning("job %s handed back to the queue at shutdown", job_id)

    def cancel(self, job_id: str) -> None:
        """Tell a job running in this process to stop at its next example (the row is already cancelled)."""
        event = self.cancel_events.get(job_id)
        if event is not None:
            event.set()

    def notify(self) -> None:
        """A job was submitted: wake an idle worker now instead of at the next poll."""
        self._wake.set()

    @property
    def alive(self) -> bool:
        return bool(self._tasks) and not any(t.done() for t in self._tasks)

    # ------------------------------------------------------------ loops

    async def _recover_loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(max(self.settings.stale_after_s / 2, 1.0))
            try:
                await asyncio.to_thread(self.recover)
            except Exception:  # noqa: BLE001 - a database hiccup must not kill the runner
                log.exception("recovery pass failed")

    async def _loop(self, worker: str) -> None:
        while not self._stopping:
            try:
                job = await asyncio.to_thread(self.store.claim, worker)
            except Exception:  # noqa: BLE001
                log.exception("claiming a job failed")
                job = None
            if job is None:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self.settings.poll_interval_s)
                except asyncio.TimeoutError:
                    pass
                continue
            self.in_flight[job.id] = worker
            try:
                await self._run_in_thread(job, worker)
            finally:
                self.in_flight.pop(job.id, None)

    async def _run_in_thread(self, job: JobRecord, worker: str) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def target() -> None:
            try:
                self._execute(job, worker)
            finally:
                loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))

        threading.Thread(target=target, name=f"job {job.id}", daemon=True).start()
        await done

    def _execute(self, job: JobRecord, worker: str) -> None:
        """Run one job to a stored outcome: succeeded with its result, or failed with the reason."""
        stop_beat = threading.Event()
        cancelled = self.cancel_events.setdefault(job.id, threading.Event())

        def beat() -> None:
            while not stop_beat.wait(HEARTBEAT_S):
                if self.store.heartbeat(job.id, worker) is False:
                    cancelled.set()  # cancelled (or taken over): stop at the next example

        threading.Thread(target=beat, name=f"heartbeat {job.id}", daemon=True).start()
        progress = StoreProgress(lambda p: self.store.heartbeat(job.id, worker, p), cancelled=cancelled)
        try:
            request: Any = stored_request(self.store.request(job.id))
            with ModelCache(self.settings.cache_dir) as cache:
                result = execute_job(request, job_id=job.id, settings=self.settings, cache=cache,
                                     progress=progress)
            if not self.store.finish(job.id, worker, result):
                log.warning("job %s finished but was no longer ours (requeued?); result dropped, "
                            "the cache keeps its model answers", job.id)
        except JobCancelled:
            log.warning("job %s cancelled; the answers it had paid for stay cached", job.id)
        except ClusterdivError as exc:
            self.store.fail(job.id, worker, str(exc))
        except Exception as exc:  # noqa: BLE001 - any bug becomes a failed job with its reason
            log.exception("job %s crashed", job.id)
            self.store.fail(job.id, worker, f"internal error: {type(exc).__name__}: {exc}")
        finally:
            stop_beat.set()
            self.cancel_events.pop(job.id, None)
