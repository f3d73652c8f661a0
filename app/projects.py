"""Manager pages: create and edit projects, upload images, progress and speed, COCO downloads.

Each view asks `permissions.ROUTES` which action its endpoint needs, so the table is the one
place that says who may open what.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy.exc import IntegrityError

from annotator_backend import jobs, stats
from annotator_backend.coco_export import STATUSES
from annotator_backend.images import MAX_FILE_BYTES, ImageError, add_image
from annotator_backend.management import (
    CategoryRow,
    TransitionError,
    all_users,
    member_ids,
    new_project,
    requeue_image,
    update_project,
)
from annotator_backend.model_registry import active_version
from annotator_backend.models import Image, Project, User
from annotator_backend.permissions import allowed, route_access
from annotator_backend.projects import PALETTE, ProjectError
from annotator_backend.streaming import coco_chunks, events_chunks

from .database import db, settings
from .helpers import require_action

bp = Blueprint("projects", __name__)
NEW_ROWS = 3
FORMATS = ("rle", "polygon")


def check(project_id: int | None = None) -> User:
    """The current user, or 403 unless the table lets them open this endpoint (on this project)."""
    access = route_access(request.endpoint)
    return require_action(access.action, project_id if access.per_project else None)


@bp.app_context_processor
def permission_helpers() -> dict:
    """`user_can(action)` for templates (navigation links only; views check for themselves)."""

    def user_can(action: str) -> bool:
        return bool(current_user.is_authenticated and allowed(current_user.role, action))

    return {"user_can": user_can}


def _project(project_id: int) -> Project:
    project = db().get(Project, project_id)
    if project is None:
        abort(404, description="no such project")
    return project


def _category_rows() -> list[CategoryRow]:
    form = request.form
    ids, names, colors = form.getlist("cat_id"), form.getlist("cat_name"), form.getlist("cat_color")
    if not len(ids) == len(names) == len(colors):
        abort(400, description="malformed category rows")
    deleted = set(form.getlist("cat_delete"))
    rows = []
    for raw, name, color in zip(ids, names, colors, strict=True):
        if raw and not raw.isdigit():
            abort(400, description="malformed category id")
        cid = int(raw) if raw else None
        rows.append(CategoryRow(cid, name, color, cid is not None and raw in deleted))
    return rows


def _member_ids() -> list[int]:
    raw = request.form.getlist("members")
    if not all(v.isdigit() for v in raw):
        abort(400, description="malformed member list")
    return [int(v) for v in raw]


def _form_page(template: str, project: Project | None, status: int = 200, **extra: object):  # noqa: ANN202
    session = db()
    if project is not None and request.method == "GET":
        rows = [CategoryRow(c.id, c.name, c.color) for c in project.categories]
        members = member_ids(session, project.id)
        name = project.name
    elif request.method == "POST":
        rows, members, name = _category_rows(), set(_member_ids()), request.form.get("name", "")
    else:
        rows, members, name = [], set(), ""
    rows = [r for r in rows if r.id is not None or r.name.strip()]
    rows += [CategoryRow(None, "", PALETTE[(len(rows) + i) % len(PALETTE)]) for i in range(NEW_ROWS)]
    return (
        render_template(
            template,
            project=project,
            name=name,
            rows=rows,
            members=members,
            users=[u for u in all_users(session) if u.is_active],
            **extra,
        ),
        status,
    )


@bp.route("/projects/new", methods=["GET", "POST"])
@login_required
def new():  # noqa: ANN201
    user = check()
    if request.method == "GET":
        return _form_page("project_new.html", None)
    session = db()
    try:
        project = new_project(session, request.form.get("name", ""), _category_rows(), _member_ids(), user)
        session.commit()
    except (ProjectError, IntegrityError) as exc:
        session.rollback()
        flash(
            "a project with this name exists already" if isinstance(exc, IntegrityError) else str(exc),
            "error",
        )
        return _form_page("project_new.html", None, 400)
    flash(f"Project {project.name} created.")
    return redirect(url_for("projects.detail", project_id=project.id), 303)


@bp.route("/projects/<int:project_id>/edit", methods=["GET", "POST"])
@login_required
def edit(project_id: int):  # noqa: ANN201
    check(project_id)
    project = _project(project_id)
    if request.method == "GET":
        return _form_page("project_edit.html", project)
    session = db()
    try:
        update_project(session, project, request.form.get("name", ""), _category_rows(), _member_ids())
        session.commit()
    except (ProjectError, IntegrityError) as exc:
        session.rollback()
        flash("category names clash" if isinstance(exc, IntegrityError) else str(exc), "error")
        return _form_page("project_edit.html", _project(project_id), 400)
    flash("Project saved.")
    return redirect(url_for("projects.detail", project_id=project_id), 303)


def _detail_page(project: Project, status: int = 200):  # noqa: ANN202
    session = db()
    counts = stats.image_counts(session, project.id)
    return (
        render_template(
            "project_detail.html",
            project=project,
            counts=counts,
            summary=stats.mask_summary(session, project.id, counts),
            annotators=stats.annotator_rows(session, project.id),
            chart=stats.chart(stats.seconds_per_mask_timeline(session, project.id)),
            jobs=stats.recent_jobs(session, project.id),
            skipped=stats.skipped_images(session, project.id),
            members=member_ids(session, project.id),
            users={u.id: u.username for u in all_users(session)},
            formats=FORMATS,
            statuses=list(STATUSES),
        ),
        status,
    )


@bp.route("/projects/<int:project_id>")
@login_required
def detail(project_id: int):  # noqa: ANN201
    check(project_id)
    return _detail_page(_project(project_id))


@bp.route("/projects/<int:project_id>/jobs")
@login_required
def job_progress(project_id: int):  # noqa: ANN201
    check(project_id)
    _project(project_id)
    recent = stats.recent_jobs(db(), project_id)
    return jsonify(jobs=recent, active=any(j["status"] in ("queued", "running") for j in recent))


@bp.route("/projects/<int:project_id>/images", methods=["POST"])
@login_required
def upload(project_id: int):  # noqa: ANN201
    user = check(project_id)
    project = _project(project_id)
    session = db()
    files = [f for f in request.files.getlist("images") if f and f.filename]
    if not files:
        flash("Choose one or more image files to upload.", "error")
        return _detail_page(project, 400)
    added, duplicates, rejected = 0, 0, 0
    for f in files:
        data = f.stream.read(MAX_FILE_BYTES + 1)
        try:
            image = add_image(session, settings(), project, data, f.filename or "upload")
        except ImageError as exc:
            session.rollback()
            rejected += 1
            flash(f"Rejected {exc}", "error")
            continue
        session.commit()
        added, duplicates = added + (image is not None), duplicates + (image is None)
    flash(f"Added {added} images; {duplicates} duplicates skipped; {rejected} rejected.")
    if added:
        version = active_version(session)
        if version is None:
            flash("No active model: the images are embedded once an admin activates one.", "error")
        else:
            params = {"project_id": project_id, "model_version_id": version.id}
            job = jobs.submit(session, settings(), "embed", params, project_id=project_id, user_id=user.id)
            flash(f"Embedding job {job.id} queued for model {version.name}.")
    if not added and not duplicates:
        return _detail_page(project, 400)
    return redirect(url_for("projects.detail", project_id=project_id), 303)


@bp.route("/projects/<int:project_id>/images/<int:image_id>/requeue", methods=["POST"])
@login_required
def requeue(project_id: int, image_id: int):  # noqa: ANN201
    user = check(project_id)
    session = db()
    image = session.get(Image, image_id)
    if image is None or image.project_id != project_id:
        abort(404, description="no such image in this project")
    try:
        requeue_image(session, user, image)
        session.commit()
        flash(f"Image {image_id} is back in the queue.")
    except TransitionError as exc:
        session.rollback()
        flash(str(exc), "error")
    return redirect(url_for("projects.detail", project_id=project_id), 303)


def _download(chunks: object, mimetype: str, filename: str) -> Response:
    response = Response(chunks, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


def _export_args() -> tuple[str, str]:
    fmt, status = request.args.get("format", "rle"), request.args.get("status", "accepted")
    if fmt not in FORMATS:
        abort(400, description="format must be rle or polygon")
    if status not in STATUSES:
        abort(400, description=f"status must be one of {', '.join(STATUSES)}")
    return fmt, status


@bp.route("/projects/<int:project_id>/export/coco.json")
@login_required
def export_coco(project_id: int):  # noqa: ANN201
    check(project_id)
    _project(project_id)
    fmt, status = _export_args()
    chunks = coco_chunks(settings().database_url, project_id, fmt, status)
    return _download(chunks, "application/json", f"project-{project_id}-coco-{fmt}-{status}.json")


@bp.route("/projects/<int:project_id>/export/events.jsonl")
@login_required
def export_events(project_id: int):  # noqa: ANN201
    check(project_id)
    _project(project_id)
    _fmt, status = _export_args()
    chunks = events_chunks(settings().database_url, project_id, status)
    return _download(chunks, "application/x-ndjson", f"project-{project_id}-events-{status}.jsonl")
