"""The job kinds: embed a project's images, export COCO."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .jobs import JobContext, handler
from .models import ModelVersion, Project


@handler("embed")
def embed_project(ctx: JobContext) -> dict[str, Any]:
    """Embed every image of a project that `model_version_id` has not embedded yet."""
    from .embeddings import ensure_embedding, missing_images

    with ctx.session() as s:
        project = s.get(Project, ctx.params["project_id"])
        version = s.get(ModelVersion, ctx.params["model_version_id"])
        if project is None or version is None:
            raise LookupError("project or model version no longer exists")
        todo = missing_images(s, project, version)
        total = len(todo)
        ctx.progress(force=True, done=0, total=total)
        for i, image in enumerate(todo, 1):
            ensure_embedding(s, ctx.settings, image, version)
            ctx.progress(done=i, total=total, force=i == total)
    return {"embedded": total}


@handler("export_coco")
def export_coco(ctx: JobContext) -> dict[str, Any]:
    """Write a project's COCO export to `out` under the data dir."""
    from .coco_export import export_project

    out = ctx.settings.data_dir / "exports" / Path(ctx.params["out_name"]).name
    out.parent.mkdir(parents=True, exist_ok=True)
    with ctx.session() as s:
        project = s.get(Project, ctx.params["project_id"])
        if project is None:
            raise LookupError("project no longer exists")
        count = export_project(
            s, project, out, ctx.params.get("format", "rle"), ctx.params.get("status", "accepted")
        )
    return {"annotations": count, "file": str(out)}


from . import retrain  # noqa: E402,F401  (registers the "retrain" job kind)
