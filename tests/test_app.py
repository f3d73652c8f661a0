"""The web layer through the Flask test client and the Flask-SocketIO test client."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from annotator_backend import rle
from annotator_backend.embeddings import EMBEDDING_SHAPE, save_embedding
from annotator_backend.images import add_image
from annotator_backend.models import Embedding, Event, Image, Mask
from app import create_app
from app.extensions import socketio

from .conftest import write_image
from .fixtures_world import PASSWORD, build_world, fake_decoder_bytes


@pytest.fixture
def world(session, settings, tmp_path: Path):  # noqa: ANN001, ANN201
    return build_world(session, settings, tmp_path)


@pytest.fixture
def app(settings, world):  # noqa: ANN001, ANN201
    return create_app(settings, TESTING=True, WTF_CSRF_ENABLED=False)


def login(client, username: str = "ann") -> None:  # noqa: ANN001
    r = client.post("/login", data={"username": username, "password": PASSWORD})
    assert r.status_code == 302, r.data


def test_pages_need_a_login(app) -> None:  # noqa: ANN001
    client = app.test_client()
    assert client.get("/").status_code == 302
    assert client.get("/api/projects/1/next").status_code == 401
    r = client.post("/login", data={"username": "ann", "password": "wrong password"})
    assert r.status_code == 401 and b"Wrong username or password" in r.data


def test_login_form_has_csrf_and_cookie_flags(settings, world) -> None:  # noqa: ANN001
    app = create_app(settings)
    client = app.test_client()
    assert client.post("/login", data={"username": "ann", "password": PASSWORD}).status_code == 400
    page = client.get("/login").data.decode()
    assert 'name="csrf_token"' in page and 'name="username"' in page and 'name="password"' in page
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    r = client.post("/login", data={"username": "ann", "password": PASSWORD, "csrf_token": token})
    cookie = r.headers["Set-Cookie"]
    assert r.status_code == 302 and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_annotate_flow_over_http(app, world) -> None:  # noqa: ANN001
    client = app.test_client()
    login(client)
    page = client.get(f"/projects/{world.project.id}/annotate")
    assert page.status_code == 200
    assert page.headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert page.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
    nxt = client.get(f"/api/projects/{world.project.id}/next").get_json()
    assert nxt["image"]["id"] == world.image.id and (nxt["image"]["width"], nxt["image"]["height"]) == (
        64,
        48,
    )
    assert nxt["model"]["trained"] is False
    emb = client.get(nxt["embedding_url"])
    assert emb.mimetype == "application/octet-stream" and emb.headers["X-Embedding-Shape"] == "1,256,64,64"
    assert emb.headers["X-Embedding-Dtype"] == "float32"  # values too wide for float16 stay float32
    arr = np.frombuffer(emb.data, dtype="<f4")
    assert arr.size == 256 * 64 * 64 and arr[12345] == 12345.0
    assert client.get(nxt["image"]["url"]).status_code == 200
    url = nxt["model"]["decoder_url"]
    assert url.endswith("?variant=split")  # the page runs the split graphs (decoder_split.py)
    assert client.get(url.replace("variant=split", "variant=fp32")).data == fake_decoder_bytes()


def test_embedding_goes_out_as_stored_float16(app, world, session) -> None:  # noqa: ANN001
    row = session.scalars(select(Embedding).where(Embedding.image_id == world.image.id)).one()
    values = np.linspace(-3, 3, 256 * 64 * 64, dtype=np.float32).reshape(EMBEDDING_SHAPE)
    save_embedding(Path(row.path), values)
    client = app.test_client()
    login(client)
    emb = client.get(f"/api/images/{world.image.id}/embedding?model={world.version.id}")
    assert emb.headers["X-Embedding-Dtype"] == "float16" and len(emb.data) == 2 * 256 * 64 * 64
    got = np.frombuffer(emb.data, dtype="<f2").astype(np.float32).reshape(EMBEDDING_SHAPE)
    assert np.abs(got - values).max() <= 3 * 2.0**-11


def test_prefetch_reserves_one_more_image(app, world, session, settings, tmp_path: Path) -> None:  # noqa: ANN001
    """`/next?exclude=ID` leases the image that comes after ID; asking again leases no third."""
    for i in range(3):
        data = write_image(tmp_path / f"more{i}.png", 32, 24, seed=10 + i).read_bytes()
        add_image(session, settings, world.project, data, f"more{i}.png")
    session.commit()
    client = app.test_client()
    login(client)
    url = f"/api/projects/{world.project.id}/next"
    first = client.get(url).get_json()["image"]["id"]
    ahead = client.get(f"{url}?exclude={first}").get_json()["image"]["id"]
    assert ahead != first
    assert client.get(f"{url}?exclude={first}").get_json()["image"]["id"] == ahead
    assert client.get(f"{url}?exclude={ahead}").get_json()["image"]["id"] == first
    assert client.get(url).get_json()["image"]["id"] == first  # the open image comes first
    session.expire_all()
    leased = session.scalars(select(Image.id).where(Image.lease_user_id.is_not(None))).all()
    assert sorted(leased) == sorted([first, ahead])
    assert client.post(f"/api/images/{first}/finish", json={}).get_json()["ok"]
    assert client.get(url).get_json()["image"]["id"] == ahead  # the reserved one is next


def test_outsider_cannot_read_the_project(app, world) -> None:  # noqa: ANN001
    client = app.test_client()
    login(client, "outsider")
    assert client.get(f"/projects/{world.project.id}/annotate").status_code == 403
    assert client.get(f"/api/projects/{world.project.id}/next").status_code == 403
    assert client.get(f"/images/{world.image.id}/file").status_code == 403
    assert client.get(f"/api/images/{world.image.id}/embedding").status_code == 403


def test_socket_refuses_anonymous(app) -> None:  # noqa: ANN001
    sio = socketio.test_client(app, flask_test_client=app.test_client())
    assert not sio.is_connected()


def test_socket_events_are_acked_once(app, world, session) -> None:  # noqa: ANN001
    client = app.test_client()
    login(client)
    sio = socketio.test_client(app, flask_test_client=client)
    assert sio.is_connected()
    sid = str(uuid.uuid4())

    def ev(kind: str, payload: dict, seq: int) -> dict:
        return {
            "uuid": str(uuid.uuid4()),
            "session": sid,
            "seq": seq,
            "type": kind,
            "image_id": world.image.id,
            "model_version_id": world.version.id,
            "client_ts": time.time() * 1000,
            "payload": payload,
        }

    click = ev("click", {"x": 3, "y": 4, "label": 0}, 0)
    assert sio.emit("event", click, callback=True) == {"ok": True, "uuid": click["uuid"], "duplicate": False}
    assert sio.emit("event", click, callback=True)["duplicate"] is True
    mask = np.zeros((48, 64), bool)
    mask[1:5, 2:9] = True
    accept = ev(
        "accept",
        {
            "mask_uuid": str(uuid.uuid4()),
            "category_id": world.category_ids[0],
            "rle": rle.encode(mask),
            "active_ms": 900,
            "clicks": 1,
            "strokes": 0,
        },
        1,
    )
    ack = sio.emit("event", accept, callback=True)
    assert ack["ok"] and ack["mask_id"]
    bad = sio.emit("event", {"type": "click"}, callback=True)
    assert bad["ok"] is False and "uuid" in bad["error"]
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Event)) == 2
    assert session.scalar(select(func.count()).select_from(Mask)) == 1
    sio.disconnect()
