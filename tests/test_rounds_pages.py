"""The admin's retraining loop in the web app: start a round, watch it over Socket.IO (in-process
runner and Celery worker), compare, promote, discard, cancel; and /next serving each image with
one version's embedding and decoder.
Refusals for other roles are cells of tests/test_permissions.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import torch
from sqlalchemy import select

from annotator_backend import jobs
from annotator_backend.accounts import add_user
from annotator_backend.db import session_factory
from annotator_backend.model_registry import activate_version, import_checkpoint
from annotator_backend.models import Embedding, Job, ModelVersion
from annotator_backend.projects import add_member
from annotator_backend.sam_factory import build_sam
from app import create_app
from app.extensions import socketio

from .conftest import make_settings
from .fixtures_world import PASSWORD
from .test_admin_pages import client_for, token
from .test_retrain import FAST, REDIS_URL, round_world

FINISHED = ("succeeded", "failed", "cancelled")


@pytest.fixture(autouse=True)
def one_thread():  # noqa: ANN201
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _checkpoint(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    torch.save(build_sam("bootstrap").state_dict(), path)
    return path


@pytest.fixture
def world(sqlite_url: str, tmp_path: Path):  # noqa: ANN201
    settings = make_settings(sqlite_url, tmp_path / "data")
    with session_factory(sqlite_url)() as s:
        w = round_world(s, settings, _checkpoint(tmp_path / "boot.pth", 7), tmp_path)
        add_user(s, "root", "admin", PASSWORD)
        add_member(s, w.project, add_user(s, "ann", "annotator", PASSWORD))
        s.commit()
    return settings, w


@pytest.fixture
def app(world):  # noqa: ANN001, ANN201
    return create_app(world[0], TESTING=True, SOCKETIO_MESSAGE_QUEUE=False, ROUND_OPTIONS=FAST)


def _post(client, url: str, **data):  # noqa: ANN001, ANN003, ANN202
    return client.post(url, data={**data, "csrf_token": token(client, "/admin/rounds")})


def _events(sio, timeout: float = 100.0) -> list[dict]:  # noqa: ANN001
    """The job_progress snapshots received until the job ends."""
    deadline = time.monotonic() + timeout
    got: list[dict] = []
    while time.monotonic() < deadline:
        got += [p["args"][0] for p in sio.get_received() if p["name"] == "job_progress"]
        if got and got[-1]["status"] in FINISHED:
            return got
        time.sleep(0.2)
    raise AssertionError(f"the round did not end in {timeout} s: {got[-1:]}")


def test_start_watch_compare_promote_discard(app, world) -> None:  # noqa: ANN001
    settings, w = world
    root = client_for(app, "root")
    page = root.get("/admin/rounds").get_data(as_text=True)
    assert "roundproj" in page and ">#1 boot (active)<" in page
    assert page.count('name="csrf_token"') == page.count("<form")
    assert 'href="/admin/rounds"' in page  # the navigation link
    form = {"project_id": w.project.id, "sources": ["accepted", "verified"], "mode": "decoder", "steps": "2"}
    for bad, message in [
        ({"minutes": "1"}, "not both"),
        ({"mode": "sideways"}, "mode is"),
        ({"sources": []}, "choose data sources"),
        ({"project_id": "999"}, "no project 999"),
        ({"base_version_id": "x"}, "whole number"),
    ]:
        r = _post(root, "/admin/rounds/start", **{**form, **bad})
        assert r.status_code == 400 and message in r.get_data(as_text=True), bad
    r = _post(root, "/admin/rounds/start", **form, name="round <one>")
    assert r.status_code == 303, r.get_data(as_text=True)
    job_id = int(re.search(r"/admin/rounds/jobs/(\d+)$", r.headers["Location"]).group(1))

    sio = socketio.test_client(app, flask_test_client=root)
    try:
        ack = sio.emit("watch_job", {"job_id": job_id}, callback=True)
        assert ack["ok"] and ack["job_id"] == job_id and ack["status"] in ("queued", "running")
        assert sio.emit("watch_job", {"job_id": str(job_id)}, callback=True)["ok"] is False
        assert sio.emit("watch_job", "nonsense", callback=True)["ok"] is False
        events = [ack, *_events(sio)]  # relayed from the job table by the web process
    finally:
        sio.disconnect()
    final = events[-1]
    assert final["status"] == "succeeded", final["error"]
    assert (
        final["progress"]["step"] == final["progress"]["total"] == 2 and len(final["progress"]["curve"]) == 2
    )
    child_id = final["result"]["version_id"]
    assert final["result"]["data"]["sources"] == ["accepted", "verified"]

    page = root.get(f"/admin/rounds/jobs/{job_id}").get_data(as_text=True)
    assert f'data-job-id="{job_id}"' in page and "js/round_progress.js" in page and "succeeded" in page
    page = root.get("/admin/rounds").get_data(as_text=True)
    assert f'href="/admin/rounds/versions/{child_id}"' in page and "round &lt;one&gt;" in page

    page = root.get(f"/admin/rounds/versions/{child_id}").get_data(as_text=True)
    assert 'data-testid="metrics"' in page and "NoC@90" in page and "<polyline points=" in page
    assert re.search(r'data-testid="lineage">\s*<li><a href="/admin/rounds/versions/1">#1 boot</a>', page)
    assert "Promote (make active)" in page and "Discard" in page
    r = _post(root, f"/admin/rounds/versions/{child_id}/promote")
    assert r.status_code == 303
    page = root.get(r.headers["Location"]).get_data(as_text=True)
    assert "is now active. Same encoder." in page and ">active</strong>" in page

    base_id = w.base.id
    assert _post(root, f"/admin/rounds/versions/{base_id}/discard").status_code == 303
    page = root.get(f"/admin/rounds/versions/{base_id}").get_data(as_text=True)
    assert ">discarded</strong>" in page and "Promote (make active)" not in page
    r = _post(root, f"/admin/models/{base_id}/activate")  # the models page goes through promote too
    assert r.status_code == 303 and "never be active" in root.get("/admin/models").get_data(as_text=True)
    r = _post(root, f"/admin/rounds/versions/{child_id}/discard")
    assert "cannot be discarded" in root.get(r.headers["Location"]).get_data(as_text=True)
    assert _post(root, "/admin/rounds/versions/999/promote").status_code == 404
    with session_factory(settings.database_url)() as s:
        assert s.get(ModelVersion, child_id).is_active and not s.get(ModelVersion, base_id).is_active
        assert s.get(ModelVersion, base_id).info["discarded"]["by"] is not None
        assert s.get(Job, job_id).params["edge_snap"] is True  # the form's default: as the page decodes


def test_cancel_a_round_and_watch_only_rounds(app, world) -> None:  # noqa: ANN001
    settings, w = world
    with session_factory(settings.database_url)() as s:
        queued = Job(kind="retrain", params={"project_id": w.project.id, "steps": 1}, project_id=w.project.id)
        other = Job(kind="embed", params={}, project_id=w.project.id)
        s.add_all([queued, other])
        s.commit()
        queued_id, other_id = queued.id, other.id
    root = client_for(app, "root")
    r = _post(root, f"/admin/rounds/jobs/{queued_id}/cancel")
    assert r.status_code == 303 and "being cancelled" in root.get(r.headers["Location"]).get_data(
        as_text=True
    )
    r = _post(root, f"/admin/rounds/jobs/{queued_id}/cancel")
    assert "already ended" in root.get(r.headers["Location"]).get_data(as_text=True)
    assert root.get(f"/admin/rounds/jobs/{other_id}").status_code == 404
    sio = socketio.test_client(app, flask_test_client=root)
    try:
        ack = sio.emit("watch_job", {"job_id": queued_id}, callback=True)
        assert ack["ok"] and ack["status"] == "cancelled"
        assert sio.emit("watch_job", {"job_id": other_id}, callback=True) == {
            "ok": False,
            "error": "no such round",
        }
    finally:
        sio.disconnect()


def test_next_serves_one_version_until_the_new_embedding_exists(app, world, tmp_path: Path) -> None:  # noqa: ANN001
    settings, w = world
    ann = client_for(app, "ann")
    url = f"/api/projects/{w.project.id}/next"
    first = ann.get(url).get_json()
    assert first["model"]["id"] == w.base.id  # nothing embedded yet: the active version
    with session_factory(settings.database_url)() as s:
        s.add(Embedding(image_id=first["image"]["id"], model_version_id=w.base.id, path="/nonexistent.npy"))
        new = import_checkpoint(s, settings, _checkpoint(tmp_path / "other.pth", 8), "bootstrap", name="new")
        activate_version(s, new.id)  # a new encoder, no embedding of it yet
        s.commit()
        new_id = new.id
    body = ann.get(url).get_json()
    assert body["image"]["id"] == first["image"]["id"]
    assert body["model"]["id"] == w.base.id and body["embedding_url"].endswith(f"model={w.base.id}")
    assert body["model"]["decoder_url"].startswith(f"/models/{w.base.id}/decoder.onnx")
    with session_factory(settings.database_url)() as s:
        job = s.scalars(select(Job).where(Job.kind == "embed")).one()  # queued by /next, once
        assert job.params == {"project_id": w.project.id, "model_version_id": new_id}
    assert ann.get(url).status_code == 200
    assert jobs.wait(settings, job.id, timeout=90).status == "succeeded"
    body = ann.get(url).get_json()
    assert body["model"]["id"] == new_id and body["embedding_url"].endswith(f"model={new_id}")
    r = ann.get(body["embedding_url"])
    assert r.status_code == 200 and r.headers["X-Model-Version"] == str(new_id)


def test_a_round_on_a_celery_worker_is_relayed_live(world, tmp_path: Path) -> None:  # noqa: ANN001
    """REDIS_URL set: the web process only queues the round; a Celery worker runs it, and the
    web process relays its progress rows from the database to the watching socket."""
    settings, w = world
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    settings = type(settings)(**{**settings.__dict__, "redis_url": REDIS_URL})
    app = create_app(settings, TESTING=True, SOCKETIO_MESSAGE_QUEUE=False, ROUND_OPTIONS=FAST)
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "ANNOTATOR_DATA_DIR": str(settings.data_dir),
        "REDIS_URL": REDIS_URL,
        "SECRET_KEY": "x",
        "OMP_NUM_THREADS": "1",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "annotator_backend.cli", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        root = client_for(app, "root")
        form = {"project_id": w.project.id, "sources": ["accepted"], "mode": "decoder", "steps": "1"}
        r = _post(root, "/admin/rounds/start", **form)
        assert r.status_code == 303
        job_id = int(r.headers["Location"].rsplit("/", 1)[1])
        sio = socketio.test_client(app, flask_test_client=root)
        try:
            ack = sio.emit("watch_job", {"job_id": job_id}, callback=True)
            assert ack["ok"] and ack["status"] in ("queued", "running")
            final = _events(sio, timeout=150)[-1]
        finally:
            sio.disconnect()
        assert final["status"] == "succeeded", final["error"]
        with session_factory(settings.database_url)() as s:
            assert s.get(ModelVersion, final["result"]["version_id"]).parent_id == w.base.id
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
        client.flushdb()
