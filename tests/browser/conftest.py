"""Browser-test fixtures: one real server (set up through the CLI) and one headless Chromium
for the whole session; a fresh logged-in browser context per test."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from browser_harness import (  # noqa: E402
    CHROMIUM,
    Instance,
    launch_browser,
    login,
    setup_instance,
    start_server,
    stop_server,
)

# Images of the projects: a landscape and a portrait one, each with a bright rectangle. "nav"
# (next / previous / skip) holds both again: same bytes, so their embeddings are reused.
LANDSCAPE = ("landscape.png", 320, 240, (80, 60, 220, 170))
PORTRAIT = ("portrait.png", 200, 360, (40, 120, 160, 300))
SQUARE = ("square.png", 256, 256, (60, 60, 200, 200))
# "queue" (prefetch): its third image is embedded on demand, when the page prefetches it.
PROJECTS = {
    "demo": [LANDSCAPE],
    "tall": [PORTRAIT],
    "nav": [LANDSCAPE, PORTRAIT],
    "queue": [LANDSCAPE, PORTRAIT, SQUARE],
}
EMBED = ["demo", "tall"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that drive Chromium get the `browser` marker."""
    here = Path(__file__).parent
    for item in items:
        inside = Path(str(item.fspath)).is_relative_to(here)
        if inside and {"page", "browser"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, vit_b_checkpoint: Path) -> Iterator[Instance]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} not installed (make chromium)")
    inst = setup_instance(tmp_path_factory.mktemp("browser-server"), vit_b_checkpoint, PROJECTS, EMBED)
    print("set-up seconds:", inst.timings)
    start_server(inst)
    yield inst
    stop_server(inst)


@pytest.fixture(scope="session")
def browser(server: Instance):  # noqa: ANN201
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch_browser(p)
        yield b
        b.close()


def _unexpected(response) -> bool:  # noqa: ANN001
    """An HTTP error the page did not ask for: not the favicon, not "no images left" (also
    from a prefetch, /next?exclude=ID)."""
    path = urlsplit(response.url).path
    if response.status < 400 or path.endswith("/favicon.ico"):
        return False
    return not (response.status == 404 and path.endswith("/next"))


@pytest.fixture
def page(browser, server: Instance):  # noqa: ANN001, ANN201
    """A logged-in page in a fresh context; console errors are collected on page.errors."""
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    pg = context.new_page()
    pg.errors = []
    pg.on(
        "console",
        lambda m: (
            pg.errors.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource")
            else None
        ),
    )
    pg.on("response", lambda r: pg.errors.append(f"HTTP {r.status} {r.url}") if _unexpected(r) else None)
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    login(pg, server.base_url)
    yield pg
    context.close()
