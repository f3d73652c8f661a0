"""Admin pages of the retraining loop: start a round, watch it live, compare, promote or discard.

Live progress: the page's socket emits "watch_job" (joins the job's room); a background task of
this web process reads the job rows from the database and relays every change to the room as
"job_progress". Reading the table works whoever runs the job: the in-process runner or a
Celery worker in another process or machine.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from flask_socketio import SocketIO, join_room
from sqlalchemy import select

from annotator_backend import jobs
from annotator_backend.access import can
from annotator_backend.db import session_factory
from annotator_backend.models import Job, JobStatus, ModelVersion, Project, User
from annotator_backend.retrain import (
    RetrainError,
    RoundConfig,
    check_round,
    discard,
    is_discarded,
    promote,
)
from annotator_backend.round_data import SOURCES

from .database import db, settings
from .projects import check

log = logging.getLogger(__name__)
bp = Blueprint("rounds", __name__, url_prefix="/admin/rounds")
METRICS = (("NoC@85", -1), ("NoC@90", -1), ("mIoU@1", 1), ("mIoU@3", 1), ("mIoU@5", 1))
FINISHED = (JobStatus.succeeded.value, JobStatus.failed.value, JobStatus.cancelled.value)
RELAY_INTERVAL_S = 0.5


def job_snapshot(job: Job) -> dict[str, Any]:
    """What the live page shows of a job (also the "job_progress" payload)."""
    return {
        "job_id": job.id,
        "kind": job.kind,
        "status": job.status,
        "progress": job.progress or {},
        "result": job.result or {},
        "error": (job.error or "").split("\n", 1)[0][:300],
    }


def state(version: ModelVersion) -> str:
    if version.is_active:
        return "active"
    return "discarded" if is_discarded(version) else "inactive"


def _int(name: str, minimum: int = 1) -> int | None:
    raw = request.form.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < minimum:
        raise RetrainError(f"{name.replace('_', ' ')} must be a whole number of at least {minimum}")
    return int(raw)


def _round_config() -> RoundConfig:
    """The round the form describes; RetrainError on a bad field."""
    form = request.form
    project_id, base_id = _int("project_id"), _int("base_version_id")
    if project_id is None:
        raise RetrainError("choose a project")
    try:
        minutes = float(form["minutes"]) if form.get("minutes", "").strip() else None
    except ValueError:
        raise RetrainError("minutes must be a number") from None
    steps = _int("steps")
    if (minutes is None) == (steps is None):
        raise RetrainError("give either a time budget in minutes or a step budget, not both")
    return RoundConfig(
        **current_app.config.get("ROUND_OPTIONS", {}),  # deployment defaults (train options...)
        project_id=project_id,
        base_version_id=base_id,
        sources=tuple(s for s in SOURCES if s in form.getlist("sources")),
        mode=form.get("mode", "decoder"),
        minutes=minutes,
        steps=steps,
        eval_limit=_int("eval_limit"),
        edge_snap=form.get("edge_snap", "on") != "off",
        name=form.get("name", "").strip()[:200] or None,
    )


def _index_page(status: int = 200):  # noqa: ANN202
    session = db()
    versions = list(session.scalars(select(ModelVersion).order_by(ModelVersion.id.desc())))
    rounds = session.scalars(select(Job).where(Job.kind == "retrain").order_by(Job.id.desc()).limit(20))
    projects = {p.id: p.name for p in session.scalars(select(Project).order_by(Project.name))}
    return (
        render_template(
            "admin_rounds.html",
            projects=projects,
            versions=versions,
            state=state,
            rounds=[job_snapshot(j) | {"params": j.params or {}} for j in rounds],
            sources=SOURCES,
            form=request.form,
        ),
        status,
    )


@bp.route("")
@login_required
def index():  # noqa: ANN201
    check()
    return _index_page()


@bp.route("/start", methods=["POST"])
@login_required
def start():  # noqa: ANN201
    user = check()
    session = db()
    try:
        cfg = _round_config()
        check_round(session, cfg)
    except RetrainError as exc:
        flash(str(exc), "error")
        return _index_page(400)
    job = jobs.submit(
        session, settings(), "retrain", cfg.to_params(), project_id=cfg.project_id, user_id=user.id
    )
    return redirect(url_for("rounds.watch", job_id=job.id), 303)


def _round_job(job_id: int) -> Job:
    job = db().get(Job, job_id)
    if job is None or job.kind != "retrain":
        abort(404, description="no such round")
    return job


@bp.route("/jobs/<int:job_id>")
@login_required
def watch(job_id: int):  # noqa: ANN201
    check()
    job = _round_job(job_id)
    project = db().get(Project, job.project_id) if job.project_id else None
    return render_template(
        "admin_rounds_watch.html",
        job=job_snapshot(job),
        params=job.params or {},
        project=project,
        versions_url=url_for("rounds.index") + "/versions/",
    )


@bp.route("/jobs/<int:job_id>/cancel", methods=["POST"])
@login_required
def cancel(job_id: int):  # noqa: ANN201
    check()
    _round_job(job_id)
    if jobs.cancel(db(), job_id):
        flash(f"Round {job_id} is being cancelled: it registers nothing.")
    else:
        flash(f"Round {job_id} had already ended.", "error")
    return redirect(url_for("rounds.watch", job_id=job_id), 303)


def lineage(version: ModelVersion) -> list[ModelVersion]:
    """The version's ancestors, root first, then the version itself."""
    chain, seen = [version], {version.id}
    while chain[-1].parent_id is not None and chain[-1].parent_id not in seen and len(chain) < 100:
        parent = db().get(ModelVersion, chain[-1].parent_id)
        if parent is None:
            break
        chain.append(parent)
        seen.add(parent.id)
    return chain[::-1]


def metric_rows(parent: dict[str, Any], child: dict[str, Any]) -> list[dict[str, Any]]:
    """Parent vs child held-out metrics, with the change and whether it is an improvement."""
    rows = []
    for name, sign in METRICS:
        a, b = parent.get(name), child.get(name)
        delta = b - a if a is not None and b is not None else None
        better = (delta or 0) * sign > 0
        rows.append({"name": name, "parent": a, "child": b, "delta": delta, "better": better})
    return rows


def curve_points(curve: list[list[float]], width: int = 480, height: int = 160, pad: int = 8) -> str:
    """SVG polyline points of a (step, loss) curve scaled into width x height."""
    if len(curve) < 2:
        return ""
    xs, ys = [p[0] for p in curve], [p[1] for p in curve]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    sx = (width - 2 * pad) / ((x1 - x0) or 1)
    sy = (height - 2 * pad) / ((y1 - y0) or 1)
    return " ".join(f"{pad + (x - x0) * sx:.1f},{height - pad - (y - y0) * sy:.1f}" for x, y in curve)


@bp.route("/versions/<int:version_id>")
@login_required
def compare(version_id: int):  # noqa: ANN201
    check()
    session = db()
    version = session.get(ModelVersion, version_id)
    if version is None:
        abort(404, description="no such model version")
    parent = session.get(ModelVersion, version.parent_id) if version.parent_id else None
    metrics = version.metrics or {}
    info = version.info or {}
    project = session.get(Project, metrics["project_id"]) if metrics.get("project_id") else None
    return render_template(
        "admin_rounds_compare.html",
        version=version,
        parent=parent,
        project=project,
        state=state,
        rows=metric_rows(metrics.get("parent_heldout") or {}, metrics.get("heldout") or {}),
        has_metrics=bool(metrics.get("heldout")),
        info=info,
        curve=curve_points(info.get("curve") or []),
        chain=lineage(version),
        discarded=info.get("discarded"),
    )


def _change(version_id: int, promoting: bool):  # noqa: ANN202
    user = check()
    session = db()
    try:
        if promoting:
            outcome = promote(session, settings(), version_id, user.id)
        else:
            discard(session, version_id, user.id)
    except LookupError:
        session.rollback()
        abort(404, description="no such model version")
    except RetrainError as exc:
        session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("rounds.compare", version_id=version_id), 303)
    if promoting:
        queued = outcome["embed_jobs"]
        more = f"Re-embedding queued (jobs {', '.join(map(str, queued))})." if queued else "Same encoder."
        flash(f"Model version {version_id} is now active. {more}")
    else:
        flash(f"Model version {version_id} discarded: kept for lineage, never active.")
    return redirect(url_for("rounds.compare", version_id=version_id), 303)


@bp.route("/versions/<int:version_id>/promote", methods=["POST"])
@login_required
def promote_version(version_id: int):  # noqa: ANN201
    return _change(version_id, promoting=True)


@bp.route("/versions/<int:version_id>/discard", methods=["POST"])
@login_required
def discard_version(version_id: int):  # noqa: ANN201
    return _change(version_id, promoting=False)


class JobRelay:
    """Polls the watched jobs' rows and emits each change to the job's room, until nobody watches."""

    def __init__(self, socketio: SocketIO, database_url: str) -> None:
        self.socketio = socketio
        self.database_url = database_url
        self.sent: dict[int, str] = {}
        self.lock = threading.Lock()
        self.running = False

    def watch(self, job_id: int, snapshot: dict[str, Any]) -> None:
        with self.lock:
            self.sent[job_id] = json.dumps(snapshot, sort_keys=True, default=str)
            if not self.running:
                self.running = True
                self.socketio.start_background_task(self._loop)

    def poll(self) -> bool:
        """One pass: emit the snapshot of every watched job that changed; False once nobody watches
        (the loop then ends, atomically with `running`, so `watch` starts a new one when needed)."""
        manager = self.socketio.server.manager
        with self.lock:
            for job_id in list(self.sent):
                if not any(True for _ in manager.get_participants("/", room(job_id))):
                    del self.sent[job_id]
            self.running = bool(self.sent)
            ids = list(self.sent)
        if not ids:
            return False
        with session_factory(self.database_url)() as s:
            snapshots = [job_snapshot(j) for j in s.scalars(select(Job).where(Job.id.in_(ids)))]
        for snap in snapshots:
            text = json.dumps(snap, sort_keys=True, default=str)
            with self.lock:
                changed = self.sent.get(snap["job_id"], text) != text
                if snap["status"] in FINISHED:  # its last state is out: stop polling it
                    self.sent.pop(snap["job_id"], None)
                elif snap["job_id"] in self.sent:
                    self.sent[snap["job_id"]] = text
            if changed:
                self.socketio.emit("job_progress", snap, to=room(snap["job_id"]), namespace="/")
        return True

    def _loop(self) -> None:
        while True:
            try:
                if not self.poll():
                    return
            except Exception:  # noqa: BLE001  (a database hiccup must not end the relay)
                log.exception("job relay")
            self.socketio.sleep(RELAY_INTERVAL_S)


def room(job_id: int) -> str:
    return f"job:{job_id}"


def watch_job(socketio: SocketIO, data: Any) -> dict[str, Any]:
    """The "watch_job" event: join the room of a round job and get its current snapshot."""
    if not current_user.is_authenticated:
        return {"ok": False, "error": "log in first"}
    session = session_factory(settings().database_url)()
    try:
        user = session.get(User, int(current_user.id))
        if user is None or not can(session, user, "retrain"):
            return {"ok": False, "error": "your role may not retrain"}
        job_id = data.get("job_id") if isinstance(data, dict) else None
        job = session.get(Job, job_id) if type(job_id) is int else None
        if job is None or job.kind != "retrain":
            return {"ok": False, "error": "no such round"}
        snapshot = job_snapshot(job)
    finally:
        session.close()
    join_room(room(job.id))
    relay = current_app.extensions.setdefault("job_relay", JobRelay(socketio, settings().database_url))
    relay.watch(job.id, snapshot)
    return {"ok": True, **snapshot}
