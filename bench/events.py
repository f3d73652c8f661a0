"""Event-log benchmark: sustained events/s stored and ack latency with concurrent Socket.IO clients.

A real `annotator serve` (set up through the CLI by tests/browser/browser_harness.py) on SQLite
and on a fresh PostgreSQL database; N annotators log in over HTTP, lease an image each
(`/api/projects/<id>/next`) and connect with python-socketio (websocket transport, session
cookie). Each client sends click events as fast as acks come back, `window` in flight at a time,
for `seconds`; a refusal marked `retry` (or an ack timeout) resends the same event, as the
browser outbox does. At the end the events table is checked against the acks: every acked UUID
stored exactly once, nothing else stored, no (session, seq) twice.

    .venv/bin/python -m bench.events [--clients 20] [--seconds 20] [--window 1] [--db sqlite,postgresql]
                                     [--quick]   # 4 clients for 3 s
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import socketio
from sqlalchemy import create_engine, func, select, text

from annotator_backend.accounts import add_user
from annotator_backend.db import make_engine, session_scope
from annotator_backend.models import Event
from annotator_backend.projects import add_member, find_project

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests" / "browser"))

from browser_harness import (  # noqa: E402
    PASSWORD,
    Instance,
    free_port,
    setup_instance,
    start_server,
    stop_server,
)

PG_ADMIN_URL = os.environ.get("TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ACK_TIMEOUT_S = 30.0
IMAGE_SIZE = (640, 480)


@dataclass
class ClientStats:
    """What one client saw: ack latencies (ms) of stored events, their UUIDs, refusals."""

    latencies_ms: list[float] = field(default_factory=list)
    acked: list[str] = field(default_factory=list)
    duplicates: int = 0
    retries: int = 0
    timeouts: int = 0
    errors: list[str] = field(default_factory=list)


def pct(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of `values`."""
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))] if s else float("nan")


def _login(base_url: str, username: str) -> requests.Session:
    http = requests.Session()
    page = http.get(f"{base_url}/login", timeout=30).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = http.post(
        f"{base_url}/login",
        data={"username": username, "password": PASSWORD, "csrf_token": token},
        timeout=30,
        allow_redirects=False,
    )
    if r.status_code != 302:
        raise RuntimeError(f"login of {username} failed: {r.status_code}")
    return http


class BenchClient:
    """One annotator: a leased image, a Socket.IO connection, one annotation session."""

    def __init__(self, base_url: str, username: str, project_id: int) -> None:
        self.http = _login(base_url, username)
        r = self.http.get(f"{base_url}/api/projects/{project_id}/next", timeout=60)
        r.raise_for_status()
        opened = r.json()
        self.image_id: int = opened["image"]["id"]
        self.model_id: int = opened["model"]["id"]
        self.width, self.height = opened["image"]["width"], opened["image"]["height"]
        cookie = "; ".join(f"{k}={v}" for k, v in self.http.cookies.items())
        self.sio = socketio.Client(reconnection=False)
        self.sio.connect(base_url, headers={"Cookie": cookie}, transports=["websocket"], wait_timeout=30)
        self.session_id = str(uuid.uuid4())
        self.seq = 0
        self.lock = threading.Lock()
        self.stats = ClientStats()

    def _event(self) -> dict[str, Any]:
        with self.lock:
            seq, self.seq = self.seq, self.seq + 1
        return {
            "uuid": str(uuid.uuid4()),
            "session": self.session_id,
            "seq": seq,
            "type": "click",
            "image_id": self.image_id,
            "model_version_id": self.model_id,
            "client_ts": time.time() * 1000,
            "decoder_ms": 12.5,
            "payload": {"x": (seq * 37) % self.width, "y": (seq * 91) % self.height, "label": seq % 2},
        }

    def pump(self, start: threading.Barrier, deadline: list[float]) -> None:
        """Send events back to back until the deadline; one in flight per calling thread."""
        start.wait()
        st = self.stats
        while time.perf_counter() < deadline[0]:
            ev = self._event()
            t0 = time.perf_counter()
            while True:  # the same event until it is acked, as the outbox does
                try:
                    ack = self.sio.call("event", ev, timeout=ACK_TIMEOUT_S)
                except socketio.exceptions.TimeoutError:
                    with self.lock:
                        st.timeouts += 1
                    continue
                if ack.get("ok"):
                    dt = (time.perf_counter() - t0) * 1000
                    with self.lock:
                        st.latencies_ms.append(dt)
                        st.acked.append(ev["uuid"])
                        st.duplicates += bool(ack.get("duplicate"))
                    break
                if ack.get("retry"):
                    with self.lock:
                        st.retries += 1
                    time.sleep(0.01)
                    continue
                with self.lock:
                    st.errors.append(str(ack.get("error")))
                return

    def close(self) -> None:
        self.sio.disconnect()
        self.http.close()


def _add_annotators(db_url: str, project: str, names: list[str]) -> None:
    """Extra annotators, members of `project`, straight into the database (a CLI call each is ~1 s)."""
    with session_scope(db_url) as s:
        proj = find_project(s, project)
        for name in names:
            add_member(s, proj, add_user(s, name, "annotator", PASSWORD))


def _check_stored(db_url: str, acked: list[str]) -> dict[str, Any]:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            stored = conn.scalar(select(func.count()).select_from(Event))
            distinct = conn.scalar(select(func.count(func.distinct(Event.uuid))))
            seq_pairs = conn.scalar(
                select(func.count()).select_from(select(Event.session_id, Event.seq).distinct().subquery())
            )
            uuids = set(conn.scalars(select(Event.uuid)))
    finally:
        engine.dispose()
    return {
        "events_stored": stored,
        "distinct_uuids": distinct,
        "distinct_session_seq": seq_pairs,
        "acked_all_stored": set(acked) == uuids and len(acked) == len(set(acked)),
    }


def _pg_create() -> tuple[str, str]:
    """A fresh PostgreSQL database: (its name, its URL)."""
    name = f"bench_events_{os.getpid()}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return name, PG_ADMIN_URL.rsplit("/", 1)[0].replace("+psycopg", "") + f"/{name}"


def _pg_drop(name: str) -> None:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _measure(inst: Instance, clients: int, seconds: float, window: int) -> dict[str, Any]:
    """Log the clients in, lease their images, then pump events for `seconds`."""
    names = ["ann", *(f"ann{i:02d}" for i in range(1, clients))]
    _add_annotators(inst.db_url, "bench", names[1:])
    t0 = time.perf_counter()
    bench_clients = [BenchClient(inst.base_url, n, inst.projects["bench"]) for n in names]
    ready_s = time.perf_counter() - t0
    try:
        if len({c.image_id for c in bench_clients}) != clients:
            raise RuntimeError("two clients were leased the same image")
        start = threading.Barrier(clients * window + 1)
        deadline = [float("inf")]
        threads = [
            threading.Thread(target=c.pump, args=(start, deadline), daemon=True)
            for c in bench_clients
            for _ in range(window)
        ]
        for t in threads:
            t.start()
        load_before = os.getloadavg()
        deadline[0] = time.perf_counter() + seconds
        began = time.perf_counter()
        start.wait()
        for t in threads:
            t.join(seconds + 4 * ACK_TIMEOUT_S)
        elapsed = time.perf_counter() - began
        load_after = os.getloadavg()
        hung = sum(t.is_alive() for t in threads)
    finally:  # in parallel: each websocket close waits up to 3 s for the server's close frame
        closers = [threading.Thread(target=c.close) for c in bench_clients]
        for t in closers:
            t.start()
        for t in closers:
            t.join()
    stats = [c.stats for c in bench_clients]
    lat = [v for st in stats for v in st.latencies_ms]
    acked = [u for st in stats for u in st.acked]
    return {
        "elapsed_s": round(elapsed, 2),
        "clients_ready_s": round(ready_s, 1),
        "acked": acked,
        "events_acked": len(acked),
        "duplicate_acks": sum(st.duplicates for st in stats),
        "retries": sum(st.retries for st in stats),
        "ack_timeouts": sum(st.timeouts for st in stats),
        "errors": [e for st in stats for e in st.errors][:5],
        "hung_threads": hung,
        "ack_ms": {
            "p50": round(pct(lat, 0.50), 2),
            "p95": round(pct(lat, 0.95), 2),
            "p99": round(pct(lat, 0.99), 2),
            "max": round(max(lat), 2) if lat else None,
            "mean": round(statistics.fmean(lat), 2) if lat else None,
        },
        "loadavg_before": [round(v, 2) for v in load_before],
        "loadavg_after": [round(v, 2) for v in load_after],
    }


def _setup(root: Path, clients: int, database_url: str | None) -> Instance:
    """An instance with one project of `clients` images, set up through the CLI (no embedding)."""
    root.mkdir(parents=True, exist_ok=True)
    w, h = IMAGE_SIZE
    images = [(f"img{i:03d}.png", w, h, (40 + i, 30, 400, 300)) for i in range(clients)]
    return setup_instance(root, None, {"bench": images}, embed=[], database_url=database_url)


def _bench(db: str, inst: Instance, clients: int, seconds: float, window: int) -> dict[str, Any]:
    """Serve `inst`, measure, stop, check the events table."""
    t0 = time.perf_counter()
    start_server(inst)
    server_s = time.perf_counter() - t0
    try:
        m = _measure(inst, clients, seconds, window)
    finally:
        stop_server(inst)
    checked = _check_stored(inst.db_url, m.pop("acked"))
    return {
        "db": db,
        "clients": clients,
        "window": window,
        "seconds": seconds,
        **checked,
        "events_per_s": round(checked["events_stored"] / m["elapsed_s"], 1),
        **m,
        "server_start_s": round(server_s, 1),
        "setup_cli_s": dict(inst.timings),
    }


def run(
    quick: bool = False,
    clients: int | None = None,
    seconds: float | None = None,
    window: int = 1,
    dbs: tuple[str, ...] = ("sqlite", "postgresql"),
) -> dict[str, Any]:
    """The benchmark on each database in `dbs` (default 20 clients for 20 s; `quick`: 4 for 3 s)."""
    clients = clients or (4 if quick else 20)
    seconds = seconds or (3.0 if quick else 20.0)
    if set(dbs) - {"sqlite", "postgresql"}:
        raise ValueError("dbs are sqlite and/or postgresql")
    pg_name, pg_url = _pg_create() if "postgresql" in dbs else (None, None)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-events-") as tmp:
            urls = {"sqlite": None, "postgresql": pg_url}
            with ThreadPoolExecutor(len(dbs)) as pool:  # set-ups overlap (mostly CLI start-up)
                insts = list(pool.map(lambda db: _setup(Path(tmp) / db, clients, urls[db]), dbs))
            if len({inst.port for inst in insts}) < len(insts):  # free_port() gave one port twice
                insts[-1].port = free_port()
                insts[-1].env["PORT"] = str(insts[-1].port)
            pairs = zip(dbs, insts, strict=True)
            return {db: _bench(db, inst, clients, seconds, window) for db, inst in pairs}
    finally:
        if pg_name is not None:
            _pg_drop(pg_name)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke size: 4 clients, 3 s")
    ap.add_argument("--clients", type=int)
    ap.add_argument("--seconds", type=float)
    ap.add_argument("--window", type=int, default=1, help="events in flight per client")
    ap.add_argument("--db", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    args = ap.parse_args()
    result = run(args.quick, args.clients, args.seconds, args.window, tuple(args.db.split(",")))
    print(json.dumps({"events": result}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
