"""Celery application for distributed jobs: `annotator worker` (or `celery -A ... worker`)."""

from __future__ import annotations

import os

from celery import Celery

from .config import load_settings


def make_celery(redis_url: str) -> Celery:
    """A Celery app using Redis as broker and result backend."""
    app = Celery("annotator", broker=redis_url, backend=redis_url)
    app.conf.update(
        task_acks_late=True,  # a job whose worker died is delivered again...
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
    )

    @app.task(name="annotator.run_job")
    def run_job_task(job_id: int) -> str:  # ...and run_job only claims it while still queued
        from .jobs import run_job

        return run_job(load_settings(), job_id)

    return app


celery_app = make_celery(os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0")
