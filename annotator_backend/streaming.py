"""Turn a writer function (one that writes to a text file) into a bounded-memory chunk iterator.

The writer runs in a thread with its own database session; chunks pass through a small bounded
queue, so a web response streams a 100k-mask COCO export without holding it in memory. When the
consumer stops early (the client went away), the writer is stopped at its next write.
"""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Callable, Iterator
from typing import IO

from .coco_export import write_coco, write_events
from .db import session_factory
from .models import Project

CHUNK_CHARS = 64 * 1024
QUEUE_DEPTH = 8
_DONE = object()


class _Stopped(Exception):
    """The consumer went away."""


class _QueueWriter(io.TextIOBase):
    def __init__(self, q: queue.Queue[object], stop: threading.Event) -> None:
        self.q, self.stop = q, stop
        self.parts: list[str] = []
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        self.parts.append(s)
        self.size += len(s)
        if self.size >= CHUNK_CHARS:
            self.push()
        return len(s)

    def push(self, item: object = None) -> None:
        if item is None:
            item, self.parts, self.size = "".join(self.parts), [], 0
        while not self.stop.is_set():
            try:
                self.q.put(item, timeout=0.5)
                return
            except queue.Full:
                continue
        raise _Stopped()


def iter_output(write: Callable[[IO[str]], object]) -> Iterator[str]:
    """Chunks of what `write(file)` writes; the thread starts on the first `next()`."""
    q: queue.Queue[object] = queue.Queue(maxsize=QUEUE_DEPTH)
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        out = _QueueWriter(q, stop)
        try:
            write(out)
            out.push()
        except _Stopped:
            return
        except BaseException as exc:  # noqa: BLE001  (re-raised in the consumer)
            errors.append(exc)
        try:
            out.push(_DONE)
        except _Stopped:
            pass

    thread = threading.Thread(target=run, name="annotator-stream", daemon=True)
    thread.start()
    try:
        while (item := q.get()) is not _DONE:
            if item:
                yield str(item)
        if errors:
            raise errors[0]
    finally:
        stop.set()


def coco_chunks(
    database_url: str, project_id: int, fmt: str = "rle", status: str = "accepted"
) -> Iterator[str]:
    """A project's COCO export as text chunks (see `coco_export.write_coco`)."""

    def write(out: IO[str]) -> None:
        with session_factory(database_url)() as session:
            project = session.get(Project, project_id)
            if project is None:
                raise LookupError(f"no project {project_id}")
            write_coco(session, project, out, fmt, status)

    return iter_output(write)


def events_chunks(database_url: str, project_id: int, status: str = "accepted") -> Iterator[str]:
    """The exported masks' timings and event logs as JSON Lines chunks."""

    def write(out: IO[str]) -> None:
        with session_factory(database_url)() as session:
            project = session.get(Project, project_id)
            if project is None:
                raise LookupError(f"no project {project_id}")
            write_events(session, project, out, status)

    return iter_output(write)
