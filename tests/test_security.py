"""Security of the web layer: Socket.IO origins, cookie flags, CSRF on forms and JSON posts, path
traversal on every file route, user text rendered as text, malformed uploads refused."""

from __future__ import annotations

import io
import re
import struct
import zlib
from pathlib import Path

import pytest
from flask import Flask, url_for
from PIL import Image as PILImage
from sqlalchemy import func, select
from werkzeug.routing import PathConverter

from annotator_backend.accounts import add_user
from annotator_backend.db import session_factory
from annotator_backend.models import Image, User
from app import create_app

from .conftest import make_settings, write_image
from .fixtures_world import PASSWORD, build_world

SECRET_MARKERS = (b"def load_settings", b"root:x:0:0", b"top secret")


def _build(session, settings, tmp_path: Path):  # noqa: ANN001, ANN202
    w = build_world(session, settings, tmp_path)
    add_user(session, "root", "admin", PASSWORD)
    session.commit()
    (settings.data_dir / "secret.txt").write_text("top secret")
    return w


@pytest.fixture
def world(session, settings, tmp_path: Path):  # noqa: ANN001, ANN201
    """A world on SQLite and on PostgreSQL (for tests whose outcome depends on the database)."""
    return _build(session, settings, tmp_path)


@pytest.fixture
def lite(sqlite_url: str, tmp_path: Path):  # noqa: ANN201
    """(settings, world) on SQLite only, for checks of the web layer that no database changes."""
    settings = make_settings(sqlite_url, tmp_path / "data")
    with session_factory(sqlite_url)() as session:
        yield settings, _build(session, settings, tmp_path)


def make_app(settings, **config: object) -> Flask:  # noqa: ANN001
    return create_app(settings, TESTING=True, SOCKETIO_MESSAGE_QUEUE=False, **config)


@pytest.fixture
def app(settings, world) -> Flask:  # noqa: ANN001
    return make_app(settings, WTF_CSRF_ENABLED=False)


def meta_token(client, path: str = "/login") -> str:  # noqa: ANN001
    page = client.get(path).get_data(as_text=True)
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)


def client_for(app: Flask, username: str):  # noqa: ANN201
    client = app.test_client()
    data = {"username": username, "password": PASSWORD, "csrf_token": meta_token(client)}
    r = client.post("/login", data=data)
    assert r.status_code == 302, r.data
    return client


def test_socketio_accepts_only_the_apps_own_origin(lite) -> None:  # noqa: ANN001
    app = make_app(lite[0])
    client = client_for(app, "ann")
    handshake = "/socket.io/?EIO=4&transport=polling"
    for origin in ("http://evil.example", "https://localhost", "http://localhost.evil.example", "null"):
        r = client.get(handshake, headers={"Origin": origin})
        assert r.status_code == 400 and b"Not an accepted origin" in r.data, origin
    r = client.get(handshake, headers={"Origin": "http://localhost"})
    assert r.status_code == 200 and r.data.startswith(b"0{")
    assert r.headers["Access-Control-Allow-Origin"] == "http://localhost"


@pytest.mark.parametrize("https", [False, True])
def test_session_cookie_flags(lite, monkeypatch, https: bool) -> None:  # noqa: ANN001
    settings = lite[0]
    if https:
        monkeypatch.setenv("PREFERRED_URL_SCHEME", "https")
    scheme = "https" if https else "http"
    for app in (make_app(settings), make_app(settings, PREFERRED_URL_SCHEME=scheme)):
        client = app.test_client()
        base = f"{scheme}://localhost"  # a Secure cookie travels over HTTPS only
        page = client.get("/login", base_url=base).get_data(as_text=True)
        token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)
        data = {"username": "ann", "password": PASSWORD, "csrf_token": token}
        r = client.post("/login", data=data, base_url=base, headers={"Referer": f"{base}/login"})
        assert r.status_code == 302, r.data
        cookie = r.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert ("; Secure" in cookie) is https


def test_json_posts_need_the_csrf_header(settings, world) -> None:  # noqa: ANN001
    app = make_app(settings)
    client = client_for(app, "ann")
    url = f"/api/images/{world.image.id}/finish"
    r = client.post(url, json={})
    assert r.status_code == 400 and b"CSRF" in r.data
    token = meta_token(client, "/")
    assert client.post(url, json={}, headers={"X-CSRFToken": "forged"}).status_code == 400
    r = client.post(url, json={}, headers={"X-CSRFToken": token})
    assert r.status_code == 200 and r.get_json()["status"] == "done"


def _html_pages(app: Flask, client, ids: dict[str, int]) -> dict[str, str]:  # noqa: ANN001
    """Every GET page of the app that answers HTML, fetched by `client`."""
    pages = {}
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint == "static" or not rule.arguments <= set(ids):
            continue
        with app.test_request_context():
            url = url_for(rule.endpoint, **{k: ids[k] for k in rule.arguments})
        r = client.get(url)
        if r.status_code == 200 and r.mimetype == "text/html":
            pages[url] = r.get_data(as_text=True)
    return pages


def test_every_post_form_carries_the_csrf_token(lite) -> None:  # noqa: ANN001
    settings, world = lite
    app = make_app(settings)
    ids = {"project_id": world.project.id, "image_id": world.image.id}
    pages = _html_pages(app, client_for(app, "root"), ids)
    assert {"/", "/projects/new", f"/projects/{world.project.id}", "/admin/users"} <= set(pages)
    for url, page in pages.items():
        for form in re.findall(r"<form\b.*?</form>", page, flags=re.S):
            if re.search(r'method="post"', form, flags=re.I):
                assert 'name="csrf_token"' in form, f"{url}: {form[:120]}"


def test_no_route_takes_a_path_from_the_user(lite) -> None:  # noqa: ANN001
    app = make_app(lite[0])
    for rule in app.url_map.iter_rules():
        if rule.endpoint != "static":
            assert not any(isinstance(c, PathConverter) for c in rule._converters.values()), rule.rule


def test_path_traversal_on_every_file_route(lite) -> None:  # noqa: ANN001
    settings, world = lite
    app = make_app(settings, WTF_CSRF_ENABLED=False)
    iid, pid, vid = world.image.id, world.project.id, world.version.id
    attempts = [
        "/static/../annotator_backend/config.py",
        "/static/%2e%2e/annotator_backend/config.py",
        "/static/%2e%2e%2fannotator_backend%2fconfig.py",
        "/static/css/..%2f..%2f..%2fannotator_backend/config.py",
        "/static/..%5cannotator_backend%5cconfig.py",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        "/static/etc/passwd",
        f"/images/../{iid}/file",
        "/images/%2e%2e%2fsecret.txt/file",
        "/images/..%2f..%2fsecret.txt/file",
        "/images//etc/passwd/file",
        "/images/%2fetc%2fpasswd/file",
        f"/images/{iid}/file/../../../secret.txt",
        f"/models/../{vid}/decoder.onnx",
        "/models/%2e%2e%2f..%2fsecret.txt/decoder.onnx",
        "/models//etc/passwd/decoder.onnx",
        f"/api/images/..%2f{iid}/embedding",
        "/api/images/%2fetc%2fpasswd/embedding",
        f"/projects/{pid}/export/coco.json/../../../../etc/passwd",
        f"/projects/%2e%2e%2f{pid}/export/coco.json",
        f"/projects/{pid}/export/..%2f..%2fsecret.txt",
        "/projects//etc/passwd/export/events.jsonl",
    ]
    client = client_for(app, "root")
    for url in attempts:
        r = client.get(url, follow_redirects=True)
        assert r.status_code in (400, 404), (url, r.status_code)
        assert not any(m in r.data for m in SECRET_MARKERS), url
    for endpoint in ("export_coco", "export_events"):  # query strings cannot name a file either
        url = f"/projects/{pid}/export/{'coco.json' if endpoint == 'export_coco' else 'events.jsonl'}"
        r = client.get(url + "?out=../../secret.txt&file=/etc/passwd&filename=../x")
        assert r.status_code == 200 and not any(m in r.data for m in SECRET_MARKERS)
        assert re.fullmatch(
            r'attachment; filename="project-\d+-[a-z]+-[a-z-]+\.jsonl?"', r.headers["Content-Disposition"]
        )
    assert client.get(f"/images/{iid}/file").status_code == 200  # the legitimate route still works


def test_upload_names_never_become_paths(app: Flask, session, settings, world, tmp_path: Path) -> None:  # noqa: ANN001
    boss = client_for(app, "boss")
    data = write_image(tmp_path / "x.png", 20, 10, seed=7).read_bytes()
    for name in ("../../escape.png", "/etc/abs.png", "..\\..\\win.png"):
        files = {"images": (io.BytesIO(data + name.encode()), name)}  # distinct bytes: no dedupe
        assert boss.post(f"/projects/{world.project.id}/images", data=files).status_code == 303
    names = session.scalars(select(Image.original_name).where(Image.id != world.image.id)).all()
    assert len(names) == 3 and {"escape.png", "abs.png"} < set(names) and not any("/" in n for n in names)
    everything = {p.name for p in settings.data_dir.parent.rglob("*")}
    assert not {"escape.png", "abs.png"} & everything
    assert not Path("/etc/abs.png").exists()


def test_html_in_names_is_shown_as_text(app: Flask, session, world) -> None:  # noqa: ANN001
    boss = client_for(app, "boss")
    form = {
        "name": "<script>alert('p')</script>",
        "cat_id": [""],
        "cat_name": ['<img src=x onerror="alert(1)">'],
        "cat_color": ["#123456"],
        "members": [str(session.scalars(select(User.id).where(User.username == "ann")).one())],
    }
    r = boss.post("/projects/new", data=form, follow_redirects=True)
    assert r.status_code == 200
    project_id = int(r.request.path.rsplit("/", 1)[1])
    ann = client_for(app, "ann")
    pages = [r.get_data(as_text=True)]  # the page with the "Project ... created" message
    pages += [boss.get(u).get_data(as_text=True) for u in ("/", f"/projects/{project_id}/edit")]
    pages += [ann.get("/").get_data(as_text=True)]
    for page in pages:
        assert "&lt;script&gt;alert(&#39;p&#39;)&lt;/script&gt;" in page
        assert "<script>alert(" not in page and "<img src=x" not in page
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in pages[0]
    annotate = ann.get(f"/projects/{project_id}/annotate").get_data(as_text=True)
    assert "<script>alert(" not in annotate and "<img src=x" not in annotate


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bomb_png(side: int = 20000) -> bytes:
    """A tiny file that claims 20000 x 20000 pixels."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (side + 1) * 4)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def test_malformed_uploads_are_refused_and_store_nothing(app, session, settings, world, tmp_path) -> None:  # noqa: ANN001
    png = write_image(tmp_path / "ok.png", 64, 48, seed=3).read_bytes()
    gif = io.BytesIO()
    PILImage.new("RGB", (8, 8)).save(gif, format="GIF")
    cases = [
        ("notes.png", b"plain text, not an image", "notes.png: not an image"),
        ("bomb.png", _bomb_png(), "bomb.png: refused as a possible decompression bomb"),
        ("cut.png", png[: len(png) // 2], "cut.png: corrupt image"),
        ("anim.gif", gif.getvalue(), "anim.gif: format GIF is not accepted"),
    ]
    boss = client_for(app, "boss")
    before = sorted(p for p in settings.data_dir.rglob("*") if p.is_file())
    for name, data, message in cases:
        r = boss.post(f"/projects/{world.project.id}/images", data={"images": (io.BytesIO(data), name)})
        page = r.get_data(as_text=True)
        assert r.status_code == 400 and message in page, (name, page[:2000])
    assert boss.post(f"/projects/{world.project.id}/images", data={}).status_code == 400
    assert session.scalar(select(func.count()).select_from(Image)) == 1
    assert sorted(p for p in settings.data_dir.rglob("*") if p.is_file()) == before
    small = make_app(settings, WTF_CSRF_ENABLED=False, MAX_CONTENT_LENGTH=4096)
    big = {"images": (io.BytesIO(b"\0" * 8192), "big.png")}
    assert client_for(small, "boss").post(f"/projects/{world.project.id}/images", data=big).status_code == 413
