"""Admin pages: accounts (list, create, deactivate, reactivate) and model versions (list, activate)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

from annotator_backend.accounts import add_user
from annotator_backend.models import Image, ModelVersion, User
from app import create_app

from .fixtures_world import PASSWORD, build_world


@pytest.fixture
def world(session, settings, tmp_path: Path):  # noqa: ANN001, ANN201
    w = build_world(session, settings, tmp_path)
    add_user(session, "root", "admin", PASSWORD)
    session.commit()
    return w


@pytest.fixture
def app(settings, world):  # noqa: ANN001, ANN201
    return create_app(settings, TESTING=True, SOCKETIO_MESSAGE_QUEUE=False)  # CSRF on


def token(client, path: str = "/login") -> str:  # noqa: ANN001
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)


def client_for(app, username: str, password: str = PASSWORD):  # noqa: ANN001, ANN201
    client = app.test_client()
    data = {"username": username, "password": password, "csrf_token": token(client)}
    assert client.post("/login", data=data).status_code == 302
    return client


def _user(session, name: str) -> User | None:  # noqa: ANN001
    session.expire_all()
    return session.scalars(select(User).where(User.username == name)).first()


def test_admin_creates_users(app, session) -> None:  # noqa: ANN001
    root = client_for(app, "root")
    page = root.get("/admin/users").get_data(as_text=True)
    assert page.count('name="csrf_token"') == page.count("<form"), "every form carries the CSRF token"
    assert all(f"<td>{n}</td>" in page for n in ("ann", "boss", "outsider", "root"))
    form = {"username": "carol", "role": "manager", "password": "long enough", "csrf_token": token(root)}
    assert root.post("/admin/users", data={**form, "csrf_token": ""}).status_code == 400  # no token
    assert _user(session, "carol") is None
    r = root.post("/admin/users", data=form)
    assert r.status_code == 303 and r.headers["Location"].endswith("/admin/users")
    carol = _user(session, "carol")
    assert carol.role == "manager" and carol.is_active and carol.password_hash.startswith("scrypt:")
    client_for(app, "carol", "long enough")
    count = session.scalar(select(func.count()).select_from(User))
    for bad, message in [
        ({"password": "short"}, "at least 8 characters"),
        ({"role": "superuser"}, "unknown role"),
        ({"username": "carol"}, "exists already"),
        ({"username": "no spaces <b>"}, "usernames are 1-80"),
    ]:
        r = root.post("/admin/users", data={**form, **bad})
        assert r.status_code == 400 and message in r.get_data(as_text=True), bad
    assert session.scalar(select(func.count()).select_from(User)) == count


def test_deactivated_users_are_logged_out_and_lose_their_leases(app, session, world) -> None:  # noqa: ANN001
    ann = client_for(app, "ann")
    assert ann.get(f"/api/projects/{world.project.id}/next").status_code == 200
    root = client_for(app, "root")
    ann_id = _user(session, "ann").id
    r = root.post(f"/admin/users/{ann_id}/deactivate", data={"csrf_token": token(root)})
    assert r.status_code == 303
    assert _user(session, "ann").is_active is False
    assert session.get(Image, world.image.id).lease_user_id is None
    assert ann.get("/").status_code == 302  # the open session no longer works
    assert ann.get(f"/api/projects/{world.project.id}/next").status_code == 401
    fresh = app.test_client()
    data = {"username": "ann", "password": PASSWORD, "csrf_token": token(fresh)}
    assert fresh.post("/login", data=data).status_code == 401
    root_id = _user(session, "root").id
    r = root.post(f"/admin/users/{root_id}/deactivate", data={"csrf_token": token(root)})
    assert r.status_code == 400 and "cannot deactivate your own account" in r.get_data(as_text=True)
    assert root.post("/admin/users/9999/deactivate", data={"csrf_token": token(root)}).status_code == 404
    assert root.post(f"/admin/users/{ann_id}/reactivate", data={"csrf_token": token(root)}).status_code == 303
    client_for(app, "ann")


def test_admin_lists_and_activates_model_versions(app, session, world) -> None:  # noqa: ANN001
    second = ModelVersion(
        name="retrained <round 2>",
        kind="retrained",
        arch="vit_b",
        parent_id=world.version.id,
        checkpoint_path="/nonexistent/x.pth",
        checkpoint_sha256="1" * 64,
    )
    session.add(second)
    session.commit()
    root = client_for(app, "root")
    page = root.get("/admin/models").get_data(as_text=True)
    assert "retrained &lt;round 2&gt;" in page and "test model" in page and "UNTRAINED" in page
    assert page.count('name="csrf_token"') == page.count("<form")
    r = root.post(f"/admin/models/{second.id}/activate", data={"csrf_token": token(root)})
    assert r.status_code == 303
    session.expire_all()
    assert session.get(ModelVersion, second.id).is_active
    assert not session.get(ModelVersion, world.version.id).is_active
    assert root.post("/admin/models/9999/activate", data={"csrf_token": token(root)}).status_code == 404
    boss = client_for(app, "boss")
    assert (
        boss.post(f"/admin/models/{world.version.id}/activate", data={"csrf_token": token(boss)}).status_code
        == 403
    )
    session.expire_all()
    assert session.get(ModelVersion, second.id).is_active


def test_admin_navigation(app) -> None:  # noqa: ANN001
    page = client_for(app, "root").get("/").get_data(as_text=True)
    assert 'href="/admin/users"' in page and 'href="/admin/models"' in page
    page = client_for(app, "boss").get("/").get_data(as_text=True)
    assert 'href="/admin/users"' not in page and 'href="/admin/models"' not in page
