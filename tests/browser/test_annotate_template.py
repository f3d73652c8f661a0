"""templates/annotate.html without a browser: the untrained warning, the hooks the browser
tests and the scripts rely on, and user-supplied names kept inert."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from flask import render_template
from flask_login import login_user

from annotator_backend.config import Settings


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    from app import create_app

    d = tmp_path_factory.mktemp("template")
    settings = Settings(
        data_dir=d / "data",
        database_url=f"sqlite:///{d / 'db.sqlite3'}",
        redis_url=None,
        secret_key="k",
        port=0,
    )
    return create_app(settings, SOCKETIO_MESSAGE_QUEUE=False, TESTING=True)


class _Project:
    id = 7
    name = "<b>Roads</b> & 'bridges'"


def render(app, model: dict | None) -> str:  # noqa: ANN001
    from app.auth import SessionUser

    categories = [
        {"id": 1, "name": "</script><script>alert(1)</script>", "color": "#ff0000"},
        {"id": 2, "name": "car", "color": "#00ff00"},
    ]
    with app.test_request_context("/projects/7/annotate"):
        login_user(SessionUser(id=5, username="ann", role="annotator"))
        return render_template("annotate.html", project=_Project, categories=categories, model=model)


def banner_hidden(html: str) -> bool:
    tag = re.search(r'<div id="untrained-banner"[^>]*>', html, re.S).group(0)
    return "hidden" in tag


def test_untrained_model_is_flagged(app) -> None:  # noqa: ANN001
    html = render(app, {"id": 1, "name": "vit_b UNTRAINED (random weights)", "trained": False})
    assert not banner_hidden(html)
    assert "Untrained model: masks are random" in html
    assert "(untrained)" in html


def test_trained_model_has_no_banner(app) -> None:  # noqa: ANN001
    html = render(app, {"id": 2, "name": "sam vit_b", "trained": True})
    assert banner_hidden(html)
    assert "sam vit_b" in html
    assert "(untrained)" not in html


def test_no_model(app) -> None:  # noqa: ANN001
    html = render(app, None)
    assert "No active model" in html


def test_hooks_and_inert_names(app) -> None:  # noqa: ANN001
    html = render(app, {"id": 2, "name": "m", "trained": True})
    assert 'data-testid="canvas"' in html and 'data-testid="mask-overlay"' in html
    assert 'type="module" src="/static/js/annotate.js"' in html
    assert 'id="help-overlay"' in html and 'id="status-line"' in html
    # User-supplied names never come out as markup.
    assert "<script>alert(1)" not in html and "<b>Roads</b>" not in html
    data = json.loads(
        re.search(r'<script type="application/json" id="page-data">(.*?)</script>', html, re.S).group(1)
    )
    assert data["project"] == {"id": 7, "name": _Project.name}
    assert data["categories"][0]["name"] == "</script><script>alert(1)</script>"
    assert data["user_id"] == 5 and data["model"]["trained"] is True


def test_every_js_module_is_small_and_single_purpose() -> None:
    js = Path(__file__).resolve().parents[2] / "static" / "js"
    files = sorted(js.glob("*.js"))
    assert files
    for f in files:
        lines = f.read_text().splitlines()
        assert len(lines) <= 300, f"{f.name}: {len(lines)} lines"
        assert "innerHTML" not in f.read_text(), f"{f.name} uses innerHTML"
