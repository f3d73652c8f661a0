"""Every cell of the permission table, against the running app.

For each HTTP route x method and each Socket.IO event, and each principal (anonymous, member
annotator, non-member annotator, manager, admin), the request must succeed exactly when
`permissions.ROUTES` / `SOCKET_EVENTS` and the role x action table say so. Each case starts from
a fresh copy of one migrated SQLite database, so a request that changes data cannot leak into
the next case. A route or event without an entry fails `test_every_route_and_event_has_an_entry`.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from annotator_backend.accounts import add_user
from annotator_backend.config import Settings
from annotator_backend.db import session_factory, upgrade
from annotator_backend.models import Job
from annotator_backend.permissions import (
    ACTIONS,
    LOGIN,
    MEMBERSHIP_REQUIRED,
    PERMISSIONS,
    PUBLIC,
    ROUTES,
    SOCKET_EVENTS,
    Access,
)
from app import create_app
from app.extensions import socketio

from .conftest import make_settings
from .fixtures_world import PASSWORD, build_world

ROLES = {"ann": "annotator", "outsider": "annotator", "boss": "manager", "root": "admin"}
PRINCIPALS = ["anonymous", *ROLES]
SKIPPED_METHODS = {"HEAD", "OPTIONS"}


def _bare_app() -> Flask:
    settings = Settings(Path("/nonexistent"), "sqlite://", None, "x", 0)
    return create_app(settings, TESTING=True, SOCKETIO_MESSAGE_QUEUE=False)


def unclassified(app: Flask) -> set[str]:
    """Endpoints of `app` that have no entry in the route table."""
    return {rule.endpoint for rule in app.url_map.iter_rules()} - set(ROUTES)


_RULES = sorted(
    (rule.endpoint, method)
    for rule in _bare_app().url_map.iter_rules()
    for method in rule.methods - SKIPPED_METHODS
)


def expected(principal: str, access: Access) -> bool:
    """What the table says, computed here independently of the app's own checks."""
    if access.action == PUBLIC:
        return True
    if principal == "anonymous":
        return False
    if access.action == LOGIN:
        return True
    role = ROLES[principal]
    if access.action not in PERMISSIONS[role]:
        return False
    return not (access.per_project and role in MEMBERSHIP_REQUIRED and principal == "outsider")


def refused(status: int, location: str) -> bool:
    return status in (401, 403) or (300 <= status < 400 and "/login?next=" in location)


@dataclass
class Env:
    app: Flask
    template: Path
    live: Path
    url: str
    ids: dict[str, int]
    cookies: dict[str, str]

    def restore(self) -> None:
        """Put the database back to its initial state."""
        session_factory(self.url).kw["bind"].dispose()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.live}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(self.template, self.live)

    def client(self, principal: str) -> FlaskClient:
        client = self.app.test_client()
        if principal != "anonymous":
            client.set_cookie("session", self.cookies[principal])
        return client


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("perm")
    template = tmp / "template.sqlite3"
    upgrade(f"sqlite:///{template}")
    data_settings = make_settings(f"sqlite:///{template}", tmp / "data")
    with session_factory(data_settings.database_url)() as s:
        world = build_world(s, data_settings, tmp)
        add_user(s, "root", "admin", PASSWORD)
        victim = add_user(s, "victim", "annotator", PASSWORD)
        s.commit()
        job = Job(kind="retrain", params={}, progress={}, project_id=world.project.id)
        s.add(job)
        s.commit()
        ids = {
            "job_id": job.id,
            "project_id": world.project.id,
            "image_id": world.image.id,
            "version_id": world.version.id,
            "user_id": victim.id,
        }
    session_factory(data_settings.database_url).kw["bind"].dispose()
    live = tmp / "live.sqlite3"
    url = f"sqlite:///{live}"
    app = create_app(make_settings(url, tmp / "data"), TESTING=True, WTF_CSRF_ENABLED=False)
    env = Env(app, template, live, url, ids, {})
    env.restore()
    for name in ROLES:
        client = app.test_client()
        r = client.post("/login", data={"username": name, "password": PASSWORD})
        assert r.status_code == 302, r.data
        env.cookies[name] = client.get_cookie("session").value
    yield env
    session_factory(url).kw["bind"].dispose()


def _url(env: Env, endpoint: str) -> str:
    rule = next(r for r in env.app.url_map.iter_rules() if r.endpoint == endpoint)
    values = {"filename": "css/app.css", **env.ids}
    missing = rule.arguments - set(values)
    assert not missing, f"add a test value for {sorted(missing)} of {endpoint}"
    with env.app.test_request_context():
        from flask import url_for

        return url_for(endpoint, **{k: values[k] for k in rule.arguments})


BODIES = {
    "auth.login": {"data": {"username": "ann", "password": PASSWORD}},
    "api.skip_image": {"json": {"reason": "blurry"}},
    "api.finish_image": {"json": {}},
}


def test_every_route_and_event_has_an_entry() -> None:
    app = _bare_app()
    assert unclassified(app) == set(), "add these routes to permissions.ROUTES"
    assert set(ROUTES) - {r.endpoint for r in app.url_map.iter_rules()} == set(), "stale entries"
    registered = set(socketio.server.handlers.get("/", {}))
    assert registered == set(SOCKET_EVENTS), "add these events to permissions.SOCKET_EVENTS"
    assert not socketio.server.namespace_handlers, "class-based namespaces need entries too"
    for access in [*ROUTES.values(), *SOCKET_EVENTS.values()]:
        assert access.action in (*ACTIONS, PUBLIC, LOGIN)


def test_a_new_route_without_an_entry_is_caught() -> None:
    app = _bare_app()
    app.add_url_rule("/brand-new", "brand_new", lambda: "hello")
    assert unclassified(app) == {"brand_new"}


def test_policy_invariants() -> None:
    """What the table must keep saying, whatever else changes in it."""
    assert {e for e, a in ROUTES.items() if a.action == PUBLIC} == {"static", "auth.login"}
    assert PERMISSIONS["annotator"] == {"annotate"}
    admin_pages = [a.action for e, a in ROUTES.items() if e.startswith("admin.")]
    assert set(admin_pages) == {"manage_users", "manage_models"}
    assert all(ROUTES[e].action != "annotate" for e in ROUTES if e.startswith("projects."))
    assert {ROUTES["projects.export_coco"].action, ROUTES["projects.export_events"].action} == {"export"}
    for rule in _bare_app().url_map.iter_rules():  # a route about a project or image checks membership
        if {"project_id", "image_id"} & rule.arguments:
            assert ROUTES[rule.endpoint].per_project, rule.endpoint


@pytest.mark.parametrize("principal", PRINCIPALS)
@pytest.mark.parametrize(("endpoint", "method"), _RULES)
def test_route_cell(env: Env, endpoint: str, method: str, principal: str) -> None:
    env.restore()
    access = ROUTES[endpoint]
    client = env.client(principal)
    kwargs = BODIES.get(endpoint, {}) if method != "GET" else {}
    r = client.open(_url(env, endpoint), method=method, headers={"Accept": "text/html"}, **kwargs)
    body = r.get_data()
    was_refused = refused(r.status_code, r.headers.get("Location", ""))
    want = expected(principal, access)
    where = f"{principal} {method} {endpoint} -> {r.status_code} {body[:200]!r}"
    assert r.status_code < 500, where
    assert was_refused != want, ("unexpected refusal: " if want else "unexpected success: ") + where


def _click(env: Env) -> dict:
    return {
        "uuid": str(uuid.uuid4()),
        "session": str(uuid.uuid4()),
        "seq": 0,
        "type": "click",
        "image_id": env.ids["image_id"],
        "model_version_id": env.ids["version_id"],
        "client_ts": time.time() * 1000,
        "payload": {"x": 3, "y": 4, "label": 1},
    }


@pytest.mark.parametrize("principal", PRINCIPALS)
@pytest.mark.parametrize("event", sorted(SOCKET_EVENTS))
def test_socket_cell(env: Env, event: str, principal: str) -> None:
    env.restore()
    want = expected(principal, SOCKET_EVENTS[event])
    sio = socketio.test_client(env.app, flask_test_client=env.client(principal))
    try:
        if event == "connect":
            assert sio.is_connected() == want, principal
            return
        if not sio.is_connected():
            assert not want, f"{principal} could not connect"
            return
        payload = {"job_id": env.ids["job_id"]} if event == "watch_job" else _click(env)
        ack = sio.emit(event, payload, callback=True)
        assert ack["ok"] == want, f"{principal} {event}: {ack}"
    finally:
        if sio.is_connected():
            sio.disconnect()
