"""Leases: two annotators never hold the same image; expired leases go back to the queue."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from annotator_backend.accounts import add_user
from annotator_backend.assignment import next_image, release
from annotator_backend.db import session_factory
from annotator_backend.images import add_image
from annotator_backend.models import Image, User, utcnow
from annotator_backend.projects import add_member, create_project

from .conftest import write_image


def _setup(session, settings, tmp_path: Path, n_images: int, n_users: int):  # noqa: ANN001, ANN202
    project = create_project(session, "leases", ["a"])
    users = [add_user(session, f"u{i}", "annotator", "password123") for i in range(n_users)]
    for u in users:
        add_member(session, project, u)
    for i in range(n_images):
        data = write_image(tmp_path / f"{i}.png", 16, 16, seed=i).read_bytes()
        add_image(session, settings, project, data, f"{i}.png")
    session.commit()
    return project, users


def test_each_annotator_gets_their_own_image(session, settings, tmp_path: Path) -> None:  # noqa: ANN001
    project, (a, b) = _setup(session, settings, tmp_path, 2, 2)
    first = next_image(session, a, project)
    second = next_image(session, b, project)
    session.commit()
    assert first and second and first.id != second.id
    assert next_image(session, a, project).id == first.id  # the same annotator keeps their image
    assert next_image(session, b, project).id == second.id
    c = add_user(session, "late", "annotator", "password123")
    session.commit()
    assert next_image(session, c, project) is None  # everything is leased


def test_expired_leases_come_back(session, settings, tmp_path: Path) -> None:  # noqa: ANN001
    project, (a, b) = _setup(session, settings, tmp_path, 1, 2)
    image = next_image(session, a, project)
    session.commit()
    assert next_image(session, b, project) is None
    image.lease_expires_at = utcnow() - timedelta(seconds=1)
    session.commit()
    assert next_image(session, b, project).id == image.id
    session.commit()
    release(session, image, b, status="done")
    session.commit()
    assert next_image(session, a, project) is None


def test_prefetch_holds_at_most_two_and_never_anothers(session, settings, tmp_path: Path) -> None:  # noqa: ANN001
    project, (a, b) = _setup(session, settings, tmp_path, 4, 2)
    current = next_image(session, a, project)
    other = next_image(session, b, project)
    ahead = next_image(session, a, project, exclude=current.id)
    session.commit()
    assert len({current.id, other.id, ahead.id}) == 3
    for exclude in (current.id, ahead.id, other.id, None):  # asking again leases nothing new
        got = next_image(session, a, project, exclude=exclude)
        assert got.id in {current.id, ahead.id} and got.id != exclude
    session.commit()
    assert sorted(session.scalars(select(Image.id).where(Image.lease_user_id == a.id))) == sorted(
        [current.id, ahead.id]
    )
    release(session, current, a, status="done")
    session.commit()
    assert next_image(session, a, project).id == ahead.id


def test_concurrent_requests_never_share_an_image(settings, tmp_path: Path) -> None:  # noqa: ANN001
    factory = session_factory(settings.database_url)
    with factory() as s:
        project, users = _setup(s, settings, tmp_path, 6, 6)
        project_id, user_ids = project.id, [u.id for u in users]
    got: dict[int, int | None] = {}
    barrier = threading.Barrier(len(user_ids))

    def take(uid: int) -> None:
        with factory() as s:
            user = s.get(User, uid)
            proj = s.get(type(project), project_id)
            barrier.wait()
            for _ in range(20):  # SQLite may report "database is locked" under contention: retry
                try:
                    image = next_image(s, user, proj)
                    s.commit()
                    got[uid] = image.id if image else None
                    return
                except Exception:  # noqa: BLE001
                    s.rollback()
            got[uid] = None

    threads = [threading.Thread(target=take, args=(uid,)) for uid in user_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [v for v in got.values() if v is not None]
    assert len(ids) == len(set(ids)) == 6
    with factory() as s:
        assert {s.get(Image, i).lease_user_id for i in ids} == set(user_ids)
