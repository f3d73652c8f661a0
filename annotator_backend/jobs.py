"""Background jobs: a row per job, run by an in-process worker thread or by Celery workers.

`submit` stores the job and hands its id to the runner: Celery when `REDIS_URL` is set (run
`annotator worker`), otherwise a daemon thread of this process. Handlers report progress
through `JobContext.progress`, which the web layer relays over Socket.IO. A job whose process
died is marked failed by `recover_interrupted`; handlers write their results (a model
version, a file) only at the end, in one transaction, so a killed job leaves nothing half-done.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .config import Settings
from .db import session_factory
from .models import Job, JobStatus, utcnow

log = logging.getLogger(__name__)
HEARTBEAT_STALE = timedelta(minutes=2)


class JobCancelled(Exception):
    """Raised inside a handler when the job was cancelled."""


@dataclass
class JobContext:
    """What a handler gets: its params, settings, and a way to report progress."""

    job_id: int
    settings: Settings
    params: dict[str, Any]
    _last: float = field(default=0.0, repr=False)

    def session(self) -> Session:
        return session_factory(self.settings.database_url)()

    def progress(self, force: bool = False, **fields: Any) -> None:
        """Store progress fields (throttled to one write a second); raise JobCancelled if cancelled."""
        now = time.monotonic()
        if not force and now - self._last < 1.0:
            return
        self._last = now
        with self.session() as s:
            job = s.get(Job, self.job_id)
            if job is None or job.status == JobStatus.cancelled.value:
                raise JobCancelled()
            job.progress = {**(job.progress or {}), **fields}
            job.heartbeat_at = utcnow()
            s.commit()


Handler = Callable[[JobContext], dict[str, Any]]
HANDLERS: dict[str, Handler] = {}


def handler(kind: str) -> Callable[[Handler], Handler]:
    """Register a job handler for `kind`."""

    def wrap(fn: Handler) -> Handler:
        HANDLERS[kind] = fn
        return fn

    return wrap


def run_job(settings: Settings, job_id: int) -> str:
    """Run one queued job to its end; returns its final status."""
    from . import job_handlers  # noqa: F401  (registers the handlers)

    factory = session_factory(settings.database_url)
    with factory() as s:
        claimed = s.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.queued.value)
            .values(status=JobStatus.running.value, started_at=utcnow(), heartbeat_at=utcnow())
        ).rowcount
        s.commit()
        job = s.get(Job, job_id)
        if not claimed or job is None:
            return job.status if job else "missing"
        kind, params = job.kind, dict(job.params or {})
    status, result, error = JobStatus.succeeded.value, {}, ""
    try:
        fn = HANDLERS.get(kind)
        if fn is None:
            raise ValueError(f"no handler for job kind {kind!r}")
        result = fn(JobContext(job_id, settings, params)) or {}
    except JobCancelled:
        status = JobStatus.cancelled.value
    except Exception as exc:  # noqa: BLE001  (a failed job is recorded, never lost)
        log.exception("job %s failed", job_id)
        status, error = JobStatus.failed.value, f"{exc}\n{traceback.format_exc(limit=5)}"
    with factory() as s:
        job = s.get(Job, job_id)
        if job.status != JobStatus.cancelled.value:
            job.status = status
        job.result, job.error, job.finished_at = result, error[:20000], utcnow()
        s.commit()
        return job.status


class InProcessRunner:
    """One daemon thread that runs jobs in submission order."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.queue: queue.Queue[int] = queue.Queue()
        self.thread = threading.Thread(target=self._loop, name="annotator-jobs", daemon=True)
        self.thread.start()

    def dispatch(self, job_id: int) -> None:
        self.queue.put(job_id)

    def _loop(self) -> None:
        while True:
            job_id = self.queue.get()
            try:
                run_job(self.settings, job_id)
            except Exception:  # noqa: BLE001
                log.exception("job runner error on job %s", job_id)
            finally:
                self.queue.task_done()


class CeleryRunner:
    """Send job ids to Celery workers through Redis."""

    def __init__(self, settings: Settings) -> None:
        from .celery_app import make_celery

        self.app = make_celery(settings.redis_url or "")

    def dispatch(self, job_id: int) -> None:
        self.app.send_task("annotator.run_job", args=[job_id])


_runners: dict[tuple[str, str | None], InProcessRunner | CeleryRunner] = {}
_runners_lock = threading.Lock()


def runner_for(settings: Settings) -> InProcessRunner | CeleryRunner:
    key = (settings.database_url, settings.redis_url)
    with _runners_lock:
        if key not in _runners:
            _runners[key] = CeleryRunner(settings) if settings.redis_url else InProcessRunner(settings)
        return _runners[key]


def submit(
    session: Session,
    settings: Settings,
    kind: str,
    params: dict[str, Any],
    project_id: int | None = None,
    user_id: int | None = None,
) -> Job:
    """Store a job and hand it to the runner; commits."""
    job = Job(kind=kind, params=params, project_id=project_id, created_by_id=user_id, progress={})
    session.add(job)
    session.commit()
    runner_for(settings).dispatch(job.id)
    return job


def cancel(session: Session, job_id: int) -> bool:
    """Ask a queued or running job to stop; True when it was still going."""
    changed = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_([JobStatus.queued.value, JobStatus.running.value]))
        .values(status=JobStatus.cancelled.value, finished_at=utcnow())
    ).rowcount
    session.commit()
    return bool(changed)


def recover_interrupted(session: Session) -> int:
    """Mark running jobs whose heartbeat stopped as failed (their process died)."""
    stale = utcnow() - HEARTBEAT_STALE
    jobs = session.scalars(select(Job).where(Job.status == JobStatus.running.value)).all()
    count = 0
    for job in jobs:
        beat = job.heartbeat_at or job.started_at
        if beat is not None and beat.replace(tzinfo=stale.tzinfo) < stale:
            job.status, job.error, job.finished_at = JobStatus.failed.value, "interrupted", utcnow()
            count += 1
    session.commit()
    return count


def wait(settings: Settings, job_id: int, timeout: float = 600.0) -> Job:
    """Poll until a job ends (for the CLI and tests)."""
    deadline = time.monotonic() + timeout
    factory = session_factory(settings.database_url)
    while True:
        with factory() as s:
            job = s.get(Job, job_id)
            if job.status in (JobStatus.succeeded.value, JobStatus.failed.value, JobStatus.cancelled.value):
                return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {job.status} after {timeout:.0f} s")
        time.sleep(0.2)
