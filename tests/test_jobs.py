"""Background jobs: the in-process runner, and Celery workers on the local Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import redis

from annotator_backend import jobs
from annotator_backend.db import session_factory
from annotator_backend.models import Job, utcnow

from .conftest import make_settings
from .fixtures_world import build_world

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


@pytest.fixture
def world(session, settings, tmp_path: Path):  # noqa: ANN001, ANN201
    return build_world(session, settings, tmp_path)


def test_in_process_export_job(session, settings, world) -> None:  # noqa: ANN001
    job = jobs.submit(
        session, settings, "export_coco", {"project_id": world.project.id, "out_name": "x.json"}
    )
    done = jobs.wait(settings, job.id, timeout=60)
    assert done.status == "succeeded", done.error
    data = json.loads(Path(done.result["file"]).read_text())
    assert data["annotations"] == [] and len(data["images"]) == 1


def test_failed_job_keeps_its_error(session, settings, world) -> None:  # noqa: ANN001
    job = jobs.submit(session, settings, "export_coco", {"project_id": 99999, "out_name": "x.json"})
    done = jobs.wait(settings, job.id, timeout=60)
    assert done.status == "failed" and "no longer exists" in done.error


def test_interrupted_jobs_are_marked_failed(session) -> None:  # noqa: ANN001
    old = utcnow() - timedelta(minutes=10)
    session.add(
        Job(kind="retrain", status="running", started_at=old, heartbeat_at=old, params={}, progress={})
    )
    session.commit()
    assert jobs.recover_interrupted(session) == 1
    assert session.query(Job).one().error == "interrupted"


def test_celery_worker_runs_jobs(sqlite_url: str, tmp_path: Path) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    data_dir = tmp_path / "data"
    settings = make_settings(sqlite_url, data_dir)
    settings = type(settings)(**{**settings.__dict__, "redis_url": REDIS_URL})

    with session_factory(sqlite_url)() as s:
        world = build_world(s, settings, tmp_path)
        env = {
            **os.environ,
            "DATABASE_URL": sqlite_url,
            "ANNOTATOR_DATA_DIR": str(data_dir),
            "REDIS_URL": REDIS_URL,
            "SECRET_KEY": "x",
        }
        worker = subprocess.Popen(
            [sys.executable, "-m", "annotator_backend.cli", "worker"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            job = jobs.submit(
                s, settings, "export_coco", {"project_id": world.project.id, "out_name": "c.json"}
            )
            done = jobs.wait(settings, job.id, timeout=120)
            assert done.status == "succeeded", done.error
            assert Path(done.result["file"]).exists()
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
    client.flushdb()
