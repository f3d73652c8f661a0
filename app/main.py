"""Pages: the project list and the annotate page."""

from __future__ import annotations

from flask import Blueprint, abort, render_template, url_for
from flask_login import login_required

from annotator_backend.access import visible_projects
from annotator_backend.model_registry import active_version, page_variant
from annotator_backend.models import Project

from .database import db, settings
from .helpers import current_db_user, require_action

bp = Blueprint("main", __name__)


def model_summary() -> dict | None:
    version = active_version(db())
    if version is None:
        return None
    return {
        "id": version.id,
        "name": version.name,
        "trained": version.trained,
        "arch": version.arch,
        "decoder_url": url_for("api.decoder", version_id=version.id, variant=page_variant(settings())),
    }


@bp.route("/")
@login_required
def index():  # noqa: ANN201
    user = current_db_user()
    return render_template("index.html", projects=visible_projects(db(), user), model=model_summary())


@bp.route("/projects/<int:project_id>/annotate")
@login_required
def annotate(project_id: int):  # noqa: ANN201
    require_action("annotate", project_id)
    project = db().get(Project, project_id)
    if project is None:
        abort(404)
    categories = [{"id": c.id, "name": c.name, "color": c.color} for c in project.categories]
    return render_template("annotate.html", project=project, categories=categories, model=model_summary())
