"""Manager pages: projects, categories and members, uploads and the embedding job, progress and
speed, the seconds-per-mask chart, COCO downloads; and the annotator's skip and finish endpoints."""

from __future__ import annotations

import io
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select

from annotator_backend import jobs, rle, stats
from annotator_backend.models import (
    AnnotationSession,
    Category,
    Image,
    ImageTransition,
    Job,
    Mask,
    Project,
    ProjectMember,
    User,
)
from annotator_backend.projects import create_project
from app import create_app

from .conftest import write_image
from .fixtures_world import PASSWORD, build_world


@pytest.fixture
def world(session, settings, tmp_path: Path):  # noqa: ANN001, ANN201
    return build_world(session, settings, tmp_path)


@pytest.fixture
def app(settings, world):  # noqa: ANN001, ANN201
    return create_app(settings, TESTING=True, WTF_CSRF_ENABLED=False, SOCKETIO_MESSAGE_QUEUE=False)


def client_for(app, username: str):  # noqa: ANN001, ANN201
    client = app.test_client()
    r = client.post("/login", data={"username": username, "password": PASSWORD})
    assert r.status_code == 302, r.data
    return client


def _uid(session, name: str) -> int:  # noqa: ANN001
    return session.scalars(select(User.id).where(User.username == name)).one()


def _png(seed: int, tmp_path: Path) -> bytes:
    return write_image(tmp_path / f"up{seed}.png", 40, 30, seed=seed).read_bytes()


def _add_mask(session, world, author: int | None, when: datetime, active_s: float, clicks: int) -> Mask:  # noqa: ANN001
    m = np.zeros((48, 64), bool)
    m[4:20, 6:30] = True
    enc = rle.encode(m)
    area, bbox = rle.area_and_bbox(enc)
    mask = Mask(
        image_id=world.image.id,
        category_id=world.category_ids[0],
        rle_counts=enc["counts"],
        bbox=bbox,
        area=area,
        author_id=author,
        active_ms=int(active_s * 1000),
        clicks=clicks,
        created_at=when,
    )
    session.add(mask)
    session.commit()
    return mask


def test_manager_creates_and_edits_a_project(app, session) -> None:  # noqa: ANN001
    boss = client_for(app, "boss")
    ann, outsider = _uid(session, "ann"), _uid(session, "outsider")
    form = {
        "name": "Birds",
        "cat_id": ["", "", ""],
        "cat_name": ["sparrow", "crow", ""],
        "cat_color": ["#FF0000", "#00ff00", "#000000"],
        "members": [str(ann)],
    }
    r = boss.post("/projects/new", data=form)
    assert r.status_code == 303
    project = session.scalars(select(Project).where(Project.name == "Birds")).one()
    assert r.headers["Location"].endswith(f"/projects/{project.id}")
    cats = {c.name: c for c in project.categories}
    assert {n: c.color for n, c in cats.items()} == {"sparrow": "#ff0000", "crow": "#00ff00"}
    assert session.scalars(
        select(ProjectMember.user_id).where(ProjectMember.project_id == project.id)
    ).all() == [ann]
    assert (
        boss.post("/projects/new", data={**form, "cat_color": ["red", "#00ff00", "#000000"]}).status_code
        == 400
    )
    assert boss.post("/projects/new", data=form).status_code == 400  # the name exists already

    page = boss.get(f"/projects/{project.id}/edit").get_data(as_text=True)
    assert 'value="sparrow"' in page and 'value="#ff0000"' in page
    edit = {
        "name": "Birds of prey",
        "cat_id": [str(cats["sparrow"].id), str(cats["crow"].id), ""],
        "cat_name": ["crow", "sparrow", "owl"],  # a swap of two names, and a new category
        "cat_color": ["#111111", "#222222", "#333333"],
        "members": [str(outsider)],
    }
    assert boss.post(f"/projects/{project.id}/edit", data=edit).status_code == 303
    session.expire_all()
    got = session.scalars(
        select(Category).where(Category.project_id == project.id).order_by(Category.position)
    )
    assert [(c.id, c.name, c.color) for c in got] == [
        (cats["sparrow"].id, "crow", "#111111"),
        (cats["crow"].id, "sparrow", "#222222"),
        (max(cats["sparrow"].id, cats["crow"].id) + 1, "owl", "#333333"),
    ]
    assert session.scalars(
        select(ProjectMember.user_id).where(ProjectMember.project_id == project.id)
    ).all() == [outsider]
    owl = session.scalars(select(Category.id).where(Category.name == "owl")).one()
    delete = {**edit, "cat_id": [*edit["cat_id"][:2], str(owl)], "cat_delete": [str(owl)]}
    assert boss.post(f"/projects/{project.id}/edit", data=delete).status_code == 303
    session.expire_all()
    assert session.get(Category, owl) is None


def test_a_category_with_masks_cannot_be_deleted(app, session, world) -> None:  # noqa: ANN001
    _add_mask(session, world, None, datetime.now(UTC), 1, 1)
    boss = client_for(app, "boss")
    form = {
        "name": "proj",
        "cat_id": [str(i) for i in world.category_ids],
        "cat_name": ["cat", "dog"],
        "cat_color": ["#111111", "#222222"],
        "cat_delete": [str(world.category_ids[0])],
    }
    r = boss.post(f"/projects/{world.project.id}/edit", data=form)
    assert r.status_code == 400 and "has 1 masks: rename it instead" in r.get_data(as_text=True)
    session.expire_all()
    assert session.get(Category, world.category_ids[0]) is not None
    assert session.get(Category, world.category_ids[0]).color != "#111111"  # nothing changed


def test_upload_queues_the_embedding_job_with_progress(app, session, settings, world, tmp_path) -> None:  # noqa: ANN001
    boss = client_for(app, "boss")
    files = [
        (io.BytesIO(_png(1, tmp_path)), "one.png"),
        (io.BytesIO(_png(2, tmp_path)), "two.png"),
        (io.BytesIO(_png(1, tmp_path)), "again.png"),
        (io.BytesIO(b"hello, not an image"), "notes.png"),
    ]
    r = boss.post(f"/projects/{world.project.id}/images", data={"images": files}, follow_redirects=True)
    page = r.get_data(as_text=True)
    assert r.status_code == 200
    assert "Added 2 images; 1 duplicates skipped; 1 rejected." in page and "notes.png: not an image" in page
    images = session.scalars(
        select(Image).where(Image.project_id == world.project.id).order_by(Image.id)
    ).all()
    assert [i.original_name for i in images] == ["img.png", "one.png", "two.png"]
    stored = sorted(p.name for p in settings.images_dir.rglob("*") if p.is_file())
    assert stored == sorted(i.stored_name for i in images)
    assert all(len(Path(n).stem) == 32 for n in stored)  # generated names, not the uploaded ones
    job = session.scalars(select(Job).where(Job.kind == "embed")).one()
    assert job.params == {"project_id": world.project.id, "model_version_id": world.version.id}
    assert job.project_id == world.project.id and job.created_by_id == _uid(session, "boss")
    jobs.wait(settings, job.id, timeout=60)  # the test model has no checkpoint: the job fails after starting
    data = boss.get(f"/projects/{world.project.id}/jobs").get_json()
    assert data["jobs"][0]["id"] == job.id and data["jobs"][0]["total"] == 2 and data["active"] is False
    assert "Embedding job" in page and 'id="jobs"' in page


def test_project_page_shows_progress_speed_and_chart(app, session, world) -> None:  # noqa: ANN001
    ann, boss_id = _uid(session, "ann"), _uid(session, "boss")
    day1 = datetime(2026, 3, 2, 9, tzinfo=UTC)
    for i, seconds in enumerate([30, 40, 50]):
        _add_mask(session, world, ann, day1 + timedelta(minutes=i), seconds, clicks=3 + i)
    for i, seconds in enumerate([10, 20]):
        _add_mask(session, world, ann, day1 + timedelta(days=6, minutes=i), seconds, clicks=2)
    _add_mask(session, world, boss_id, day1 + timedelta(days=3), 12, clicks=1)
    session.add(
        AnnotationSession(
            client_id="00000000-0000-4000-8000-000000000001",
            user_id=ann,
            project_id=world.project.id,
            image_id=world.image.id,
            started_at=day1,
            last_event_at=day1 + timedelta(minutes=30),
        )
    )
    world.image.status = "done"
    session.commit()

    rows = {r.username: r for r in stats.annotator_rows(session, world.project.id)}
    assert rows["ann"].masks == 5 and rows["ann"].median_seconds == 30.0
    assert rows["ann"].clicks_per_mask == pytest.approx(16 / 5)
    assert rows["ann"].masks_per_hour == pytest.approx(10.0)  # 5 masks in a 30-minute session
    assert rows["boss"].masks_per_hour == pytest.approx(300.0)  # no session: its 12 active seconds
    timeline = stats.seconds_per_mask_timeline(session, world.project.id)
    assert timeline.step_seconds == 86400
    assert [(p[0].day, p[1]) for p in timeline.series[0].points] == [(2, 40.0), (5, 12.0), (8, 15.0)]

    page = client_for(app, "boss").get(f"/projects/{world.project.id}").get_data(as_text=True)
    assert '<tr><td>done</td><td class="num">1</td></tr>' in page
    assert '<tr><td>masks per finished image</td><td class="num">6.0</td></tr>' in page
    assert '<td>ann</td><td class="num">5</td>' in page
    svg = page.split('data-testid="seconds-per-mask-chart">', 1)[1].split("</svg>", 1)[0]
    assert svg.count("<polyline") == 3 and svg.count("<circle") == 3 + 2 + 1  # all, ann, boss
    assert "all annotators: 40.0 s/mask, 3 masks" in svg and "2026-03-02" in svg


def test_export_downloads_stream_coco_and_events(app, session, world, tmp_path) -> None:  # noqa: ANN001
    mask = _add_mask(session, world, _uid(session, "ann"), datetime.now(UTC), 5, 2)
    boss = client_for(app, "boss")
    r = boss.get(f"/projects/{world.project.id}/export/coco.json")
    assert r.status_code == 200 and r.is_streamed
    assert r.headers["Content-Disposition"] == (
        f'attachment; filename="project-{world.project.id}-coco-rle-accepted.json"'
    )
    path = tmp_path / "dl.json"
    path.write_bytes(r.get_data())
    coco = COCO(str(path))
    ann = coco.loadAnns(coco.getAnnIds())[0]
    assert ann["id"] == mask.id and coco.annToMask(ann).sum() == mask.area
    r = boss.get(f"/projects/{world.project.id}/export/coco.json?format=polygon&status=all")
    assert json.loads(r.get_data())["info"]["format"] == "polygon"
    lines = boss.get(f"/projects/{world.project.id}/export/events.jsonl").get_data(as_text=True).splitlines()
    assert [json.loads(x)["mask_id"] for x in lines] == [mask.id]
    assert boss.get(f"/projects/{world.project.id}/export/coco.json?format=svg").status_code == 400
    assert boss.get(f"/projects/{world.project.id}/export/coco.json?status=mine").status_code == 400
    assert boss.get("/projects/9999/export/coco.json").status_code == 404


def test_skip_and_finish(app, session, world) -> None:  # noqa: ANN001
    ann = client_for(app, "ann")
    pid, iid = world.project.id, world.image.id
    assert ann.get(f"/api/projects/{pid}/next").get_json()["image"]["id"] == iid
    r = ann.post(f"/api/images/{iid}/skip", json={})
    assert r.status_code == 400 and "say why" in r.get_json()["error"]
    assert ann.post(f"/api/images/{iid}/skip", json={"reason": "x" * 501}).status_code == 400
    boss = client_for(app, "boss")
    r = boss.post(f"/api/images/{iid}/finish", json={})
    assert r.status_code == 409 and "leased to another annotator" in r.get_json()["error"]
    r = ann.post(f"/api/images/{iid}/skip", json={"reason": "  <b>too   dark</b> "})
    assert r.status_code == 200
    assert r.get_json() == {
        "ok": True,
        "image_id": iid,
        "status": "skipped",
        "changed": True,
        "next_url": f"/api/projects/{pid}/next",
    }
    session.expire_all()
    image = session.get(Image, iid)
    assert image.status == "skipped" and image.lease_user_id is None and image.lease_expires_at is None
    t = session.scalars(select(ImageTransition)).one()
    assert (t.from_status, t.to_status, t.reason, t.user_id) == (
        "new",
        "skipped",
        "<b>too dark</b>",
        _uid(session, "ann"),
    )
    assert ann.get(f"/api/projects/{pid}/next").status_code == 404
    assert ann.post(f"/api/images/{iid}/finish", json={}).status_code == 409
    page = boss.get(f"/projects/{pid}").get_data(as_text=True)
    assert "&lt;b&gt;too dark&lt;/b&gt;" in page and "<b>too dark" not in page
    assert boss.post(f"/projects/{pid}/images/{iid}/requeue").status_code == 303
    assert ann.get(f"/api/projects/{pid}/next").get_json()["image"]["id"] == iid
    assert client_for(app, "outsider").post(f"/api/images/{iid}/finish", json={}).status_code == 403
    assert ann.post(f"/api/images/{iid}/finish").get_json()["status"] == "done"
    again = ann.post(f"/api/images/{iid}/finish", json={}).get_json()
    assert again["ok"] and again["changed"] is False
    assert ann.post("/api/images/9999/finish", json={}).status_code == 404
    session.expire_all()
    assert session.get(Image, iid).status == "done" and session.get(Image, iid).lease_user_id is None


def test_annotators_see_only_their_projects(app, session, world) -> None:  # noqa: ANN001
    other = create_project(session, "other", ["x"])
    session.commit()
    page = client_for(app, "ann").get("/").get_data(as_text=True)
    assert "<td>proj</td>" in page and "<td>other</td>" not in page and "Project page" not in page
    page = client_for(app, "outsider").get("/").get_data(as_text=True)
    assert "<td>proj</td>" not in page and "not a member of any project" in page
    page = client_for(app, "boss").get("/").get_data(as_text=True)
    assert "<td>proj</td>" in page and "<td>other</td>" in page
    assert f'href="/projects/{other.id}"' in page and 'href="/projects/new"' in page
    assert 'href="/admin/users"' not in page


def test_migrations_match_the_models(db_url: str) -> None:
    """Migration 0003 (image transitions) goes down and up, and head equals the typed models."""
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.config import Config
    from alembic.migration import MigrationContext

    from annotator_backend.config import REPO_ROOT
    from annotator_backend.db import make_engine
    from annotator_backend.models import Base

    cfg = Config(str(REPO_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", db_url.replace("%", "%%"))
    command.downgrade(cfg, "0002")
    engine = make_engine(db_url)
    with engine.connect() as conn:
        assert "image_transitions" not in sa_inspect(conn).get_table_names()
    command.upgrade(cfg, "head")
    with engine.connect() as conn:
        assert "image_transitions" in sa_inspect(conn).get_table_names()
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    engine.dispose()


def test_streaming_is_bounded_and_stops_when_the_client_goes_away() -> None:
    import threading

    from annotator_backend.streaming import CHUNK_CHARS, QUEUE_DEPTH, iter_output

    written, done = [0], threading.Event()

    def write(out) -> None:  # noqa: ANN001
        try:
            for _ in range(100_000):
                out.write("x" * 1024)
                written[0] += 1024
        finally:
            done.set()

    chunks = iter_output(write)
    assert len(next(chunks)) >= CHUNK_CHARS
    time.sleep(0.3)
    assert written[0] <= (QUEUE_DEPTH + 3) * CHUNK_CHARS  # the writer waits for the reader
    chunks.close()
    assert done.wait(5) and written[0] < 100_000 * 1024

    def failing(out) -> None:  # noqa: ANN001
        out.write("partial")
        raise ValueError("broken")

    with pytest.raises(ValueError, match="broken"):
        list(iter_output(failing))
