"""Prefetching the next image (issue 6): while one image is open the next one is reserved and
loaded, so "next" opens it without fetching its embedding again; finishing, skipping and
reloading with prefetch on neither lose an image nor lease one twice. Also the page's float16
to float32 conversion of embeddings."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from browser_harness import Instance, body_data, embedding_info, switch_image, wait_prefetched, wait_ready
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from annotator_backend.models import Image


@pytest.fixture(scope="module")
def engine(server: Instance):  # noqa: ANN201
    eng = create_engine(server.db_url)
    yield eng
    eng.dispose()


def _images(engine, server: Instance) -> dict[int, tuple[str, int | None]]:  # noqa: ANN001
    """Image id -> (status, lease holder) in project "queue"."""
    with Session(engine) as s:
        rows = s.execute(
            select(Image.id, Image.status, Image.lease_user_id).where(
                Image.project_id == server.projects["queue"]
            )
        )
        return {i: (status, holder) for i, status, holder in rows}


def test_prefetch_opens_next_at_once_and_keeps_leases(page, server: Instance, engine) -> None:  # noqa: ANN001
    log: list[tuple[str, dict]] = []

    def record(req) -> None:  # noqa: ANN001
        url = urlsplit(req.url)
        if url.path.startswith("/api/") or url.path.endswith("/file"):
            log.append((url.path, parse_qs(url.query)))

    page.on("request", record)
    url = f"{server.base_url}/projects/{server.projects['queue']}/annotate"
    page.goto(f"{url}?prefetch=0")  # the setting off: nothing is reserved
    wait_ready(page)
    page.wait_for_timeout(500)
    assert body_data(page, "prefetch") == "false"
    assert not [q for p, q in log if p.endswith("/next") and "exclude" in q]
    first = int(body_data(page, "imageId"))

    page.goto(url)  # on by default
    wait_ready(page)
    assert int(body_data(page, "imageId")) == first
    ahead = int(wait_prefetched(page))
    held = {i for i, (_, holder) in _images(engine, server).items() if holder is not None}
    assert ahead != first and held == {first, ahead}

    page.reload()  # the open image comes back first; the reserved one is prefetched again
    wait_ready(page)
    assert int(body_data(page, "imageId")) == first
    assert int(wait_prefetched(page)) == ahead
    assert {i for i, (_, h) in _images(engine, server).items() if h is not None} == {first, ahead}
    log.clear()

    switch_image(page, lambda: page.keyboard.press("n"))  # finish: the prefetched image opens
    assert int(body_data(page, "imageId")) == ahead and body_data(page, "switchPrefetched") == "true"
    third = int(wait_prefetched(page))  # embedded on demand by the server, in the background
    assert third not in (first, ahead)

    def skip() -> None:
        page.keyboard.press("s")
        page.locator("#skip-reason").fill("prefetch test")
        page.keyboard.press("Enter")

    switch_image(page, skip)
    assert int(body_data(page, "imageId")) == third and body_data(page, "switchPrefetched") == "true"
    assert wait_prefetched(page) == "none"
    switch_image(page, lambda: page.keyboard.press("n"))
    assert body_data(page, "noImages") == "true"

    # Since the reload: one fetch of the third image and of its embedding, by the prefetch;
    # the switches themselves fetched neither.
    assert [p for p, _ in log if p.endswith("/embedding")] == [f"/api/images/{third}/embedding"]
    assert [p for p, _ in log if p.endswith("/file")] == [f"/images/{third}/file"]
    assert _images(engine, server) == {first: ("done", None), ahead: ("skipped", None), third: ("done", None)}
    assert embedding_info(page)["dtype"] == "float16"
    assert not page.errors, page.errors


def test_half_floats_convert_exactly(page, server: Instance) -> None:  # noqa: ANN001
    """The lookup table and the native Float16Array agree on all 65536 half floats."""
    page.goto(f"{server.base_url}/")
    bad = page.evaluate(
        """async () => {
            const m = await import('/static/js/fp16.js');
            const bits = new Uint16Array(65536).map((_, i) => i);
            const table = m.halfToFloat32(bits.buffer, { native: false });
            const bad = [];
            for (let h = 0; h < 65536; h++) {
                const want = typeof Float16Array === 'function'
                    ? new Float16Array(bits.buffer, h * 2, 1)[0] : m.halfBits(h);
                const got = table[h];
                if (!(Object.is(got, want) || (Number.isNaN(got) && Number.isNaN(want)))) bad.push(h);
            }
            const known = [[0x3c00, 1], [0xc000, -2], [0x7bff, 65504], [0x0001, 2 ** -24]];
            for (const [h, v] of known) if (m.halfBits(h) !== v) bad.push(-h);
            return bad.slice(0, 10);
        }"""
    )
    assert bad == []
