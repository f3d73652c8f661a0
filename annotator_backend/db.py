"""Engine and session factory: SQLite (WAL, foreign keys) by default, PostgreSQL by URL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from .config import REPO_ROOT


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL mode, foreign keys and a busy timeout."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        pool: dict[str, int] = {}
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            # Connections are cheap; a pool smaller than the server's concurrent handlers makes
            # some wait on it, and a waiter can lose the race for seconds (QueuePool barges).
            pool = {"pool_size": 20, "max_overflow": 60}
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **pool)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


@lru_cache(maxsize=8)
def _factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(make_engine(url), expire_on_commit=False)


def session_factory(url: str) -> sessionmaker[Session]:
    """One cached session factory (and engine) per database URL."""
    return _factory(url)


_sqlite_write_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def write_lock(session: Session) -> AbstractContextManager[object]:
    """On SQLite, a lock per database file that queues this process's writers (SQLite's own
    busy handler retries on a back-off that starves some writers for seconds when many threads
    write at once); elsewhere a no-op. Take it around a whole short write transaction."""
    bind = session.get_bind()
    if bind.dialect.name != "sqlite":
        return nullcontext()
    key = str(bind.url.database)
    with _locks_guard:
        return _sqlite_write_locks.setdefault(key, threading.Lock())


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = session_factory(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def upgrade(url: str, revision: str = "head") -> None:
    """Run Alembic migrations up to `revision` on the database at `url`."""
    from alembic import command
    from alembic.config import Config

    cfg = Config(str(REPO_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(cfg, revision)
