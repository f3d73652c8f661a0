"""Moving between images (next / previous / skip) and losing nothing: a Socket.IO connection
dropped mid-session and a page reload leave every event in the database exactly once, every
accepted mask stored and the drafted mask back on the page."""

from __future__ import annotations

import pytest
from browser_harness import Instance, body_data, wait_ready
from page_helpers import (
    accept,
    assert_replay_matches,
    clean_project,
    click_image,
    drag,
    events_of,
    open_annotate,
    server_engine,
    wait_synced,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from annotator_backend.models import AnnotationSession, Event, Image, ImageTransition, Mask


@pytest.fixture(scope="module")
def engine(server: Instance):  # noqa: ANN201
    eng = server_engine(server)
    yield eng
    eng.dispose()


def wait_image(page, via: str, not_id: str | None = None) -> None:  # noqa: ANN001
    page.wait_for_function(
        "([via, old]) => document.body.dataset.openedVia === via && document.body.dataset.imageId !== old",
        arg=[via, not_id],
        timeout=60000,
    )


def test_next_previous_and_skip(page, server: Instance, engine) -> None:  # noqa: ANN001
    clean_project(engine, server, "nav")
    first = open_annotate(page, server, "nav")
    page.keyboard.press("b")
    drag(page, first, (40, 40), (90, 60))
    page.keyboard.press("n")  # refused: a mask is being drafted
    assert "Accept (Enter) or clear (Esc)" in page.locator("#status-line").inner_text()
    assert body_data(page, "imageId") == str(first["id"])
    accept(page)
    first_session = body_data(page, "session")
    page.keyboard.press("n")
    wait_image(page, "next", str(first["id"]))
    second = int(body_data(page, "imageId"))

    page.keyboard.press("s")
    page.locator("#skip-reason").fill("blurry, cannot tell the objects apart")
    page.keyboard.press("Enter")
    page.wait_for_function("document.body.dataset.noImages === 'true'", timeout=60000)
    assert page.locator("#empty-message").is_visible()

    page.keyboard.press("Shift+N")  # the image left last: the skipped one
    wait_image(page, "previous", "")
    assert body_data(page, "imageId") == str(second)
    page.keyboard.press("Shift+N")
    wait_image(page, "previous", str(second))
    assert body_data(page, "imageId") == str(first["id"])
    page.wait_for_function("document.body.dataset.acceptedCount === '1'")

    with Session(engine) as s:
        assert s.get(Image, first["id"]).status == "done"
        assert s.get(Image, second).status == "skipped"
        query = select(ImageTransition.reason).where(ImageTransition.image_id == second)
        reasons = s.scalars(query.order_by(ImageTransition.id)).all()
        assert reasons[-1] == "blurry, cannot tell the objects apart"
    assert [e.type for e in events_of(engine, page, session_id=first_session)][-2:] == ["accept", "finish"]
    skips = [e for e in _image_events(engine, second) if e.type == "skip"]
    assert skips[-1].payload["reason"] == "blurry, cannot tell the objects apart"
    assert not page.errors, page.errors


def _image_events(engine, image_id: int) -> list[Event]:  # noqa: ANN001
    with Session(engine) as s:
        rows = list(s.scalars(select(Event).where(Event.image_id == image_id).order_by(Event.id)))
        s.expunge_all()
    return rows


def test_dropped_connection_and_reload_lose_nothing(page, server: Instance, engine) -> None:  # noqa: ANN001
    clean_project(engine, server, "demo")
    img = open_annotate(page, server, "demo")
    click_image(page, img, 150, 110)
    accept(page, "Shift+Enter")
    first_session = body_data(page, "session")

    page.context.set_offline(True)  # the Socket.IO connection drops
    page.wait_for_function("!window.annotatorDebug.socket.connected", timeout=30000)
    click_image(page, img, 60, 60)
    page.keyboard.press("b")
    drag(page, img, (10, 200), (60, 230))
    page.keyboard.press("Shift+Enter")
    page.wait_for_function("document.body.dataset.draftEntries === '0'", timeout=30000)
    drag(page, img, (250, 20), (300, 40))  # a drafted mask, not accepted
    page.wait_for_function("Number(document.body.dataset.pendingEvents) >= 4")
    logged = int(body_data(page, "loggedEvents"))

    page.context.set_offline(False)
    page.reload()
    wait_ready(page)
    page.wait_for_function("document.body.dataset.restoredEntries === '1'", timeout=30000)
    assert int(body_data(page, "maskArea")) > 0  # the drafted stroke is back
    accept(page, "Shift+Enter")
    wait_synced(page)
    second_session = body_data(page, "session")

    with Session(engine) as s:
        for client_id, count in ((first_session, logged), (second_session, None)):
            ann = s.scalars(select(AnnotationSession).where(AnnotationSession.client_id == client_id)).one()
            seqs = list(s.scalars(select(Event.seq).where(Event.session_id == ann.id).order_by(Event.seq)))
            assert seqs == list(range(len(seqs))), "every event stored once, none missing"
            if count is not None:
                assert len(seqs) == count
        accepts = [e for e in _image_events(engine, img["id"]) if e.type == "accept"]
        accepts = [e for e in accepts if e.session_id in {_sid(s, first_session), _sid(s, second_session)}]
        assert len(accepts) == 3
        for e in accepts:
            m = s.get(Mask, e.mask_id)
            assert m.status == "accepted" and m.client_uuid == e.payload["mask_uuid"]
    restore = events_of(engine, page, "draft_restore")[0].payload
    assert restore["from_session"] == first_session and len(restore["entries"]) == 1
    assert_replay_matches(engine, img["id"], {first_session, second_session})


def _sid(s: Session, client_id: str) -> int:
    return s.scalars(select(AnnotationSession.id).where(AnnotationSession.client_id == client_id)).one()
