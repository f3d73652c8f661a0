"""JSON and binary endpoints of the annotate page: next image, image file, embedding, decoder."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, abort, jsonify, request, send_file, url_for
from flask_login import login_required
from sqlalchemy import select
from sqlalchemy.orm import Session

from annotator_backend.assignment import next_image
from annotator_backend.embeddings import ensure_embedding, read_embedding
from annotator_backend.images import image_path
from annotator_backend.management import ReasonError, TransitionError, finish_image, skip_image
from annotator_backend.model_registry import (
    DECODER_VARIANTS,
    decoder_file,
    get_version,
    page_variant,
    served_variant,
)
from annotator_backend.models import Image, Mask, MaskStatus, ModelVersion, Project
from annotator_backend.retrain import ensure_embed_job, serving_version

from .database import db, settings
from .helpers import current_db_user, require_action

bp = Blueprint("api", __name__)
# The embedding's bytes on the wire: raw little-endian values, C order, of this dtype (header
# X-Embedding-Dtype); the browser converts float16 to the decoder's float32 once per image.
WIRE_DTYPES = {2: "float16", 4: "float32"}


def _image_for(image_id: int, action: str = "annotate") -> Image:
    image = db().get(Image, image_id)
    if image is None:
        abort(404)
    require_action(action, image.project_id)
    return image


@bp.route("/api/projects/<int:project_id>/next")
@login_required
def next_for_me(project_id: int):  # noqa: ANN201
    """The image to annotate (leased to the caller). `?exclude=ID` (prefetch while image ID is
    open): another one, held or newly leased; see `assignment.next_image`."""
    user = require_action("annotate", project_id)
    session = db()
    project = session.get(Project, project_id)
    if project is None:
        abort(404)
    try:
        active = get_version(session, None)
    except LookupError:
        return jsonify(error="no active model: an admin must import or activate one"), 409
    image = next_image(session, user, project, exclude=request.args.get("exclude", type=int))
    session.commit()
    if image is None:
        return jsonify(error="no images left"), 404
    version = serving_version(session, image, active)  # embedding and decoder of one version
    if version.id != active.id:  # the active one's embedding is computed in the background
        ensure_embed_job(session, settings(), project_id, active.id, user.id)
    return jsonify(**_image_payload(session, image, version))


def _image_payload(session: Session, image: Image, version: ModelVersion) -> dict:
    """What the annotate page needs to open an image: the image, the model, the embedding URL
    and the image's accepted masks (id, client uuid, category, compressed RLE)."""
    masks = session.scalars(
        select(Mask)
        .where(Mask.image_id == image.id, Mask.status == MaskStatus.accepted.value)
        .order_by(Mask.id)
    )
    return dict(
        image={
            "id": image.id,
            "width": image.width,
            "height": image.height,
            "name": image.original_name,
            "url": url_for("api.image_file", image_id=image.id),
        },
        model={
            "id": version.id,
            "name": version.name,
            "trained": version.trained,
            "decoder_url": url_for("api.decoder", version_id=version.id, variant=page_variant(settings())),
        },
        embedding_url=url_for("api.embedding", image_id=image.id, model=version.id),
        masks=[
            {
                "id": m.id,
                "uuid": m.client_uuid,
                "category_id": m.category_id,
                "rle": {"size": [image.height, image.width], "counts": m.rle_counts},
            }
            for m in masks
        ],
    )


@bp.route("/api/images/<int:image_id>/open")
@login_required
def open_image(image_id: int):  # noqa: ANN201
    """An image by id for the annotate page's "previous": same answer as next, no lease taken."""
    image = _image_for(image_id)
    session = db()
    try:
        active = get_version(session, None)
    except LookupError:
        return jsonify(error="no active model: an admin must import or activate one"), 409
    return jsonify(**_image_payload(session, image, serving_version(session, image, active)))


@bp.route("/images/<int:image_id>/file")
@login_required
def image_file(image_id: int):  # noqa: ANN201
    image = _image_for(image_id)
    path = image_path(settings(), image)
    if not path.is_file():
        abort(404)
    response = send_file(path, max_age=3600, conditional=True)
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


@bp.route("/api/images/<int:image_id>/embedding")
@login_required
def embedding(image_id: int):  # noqa: ANN201
    """The image's embedding [1,256,64,64] for `?model=ID` as raw bytes, dtype in X-Embedding-Dtype."""
    image = _image_for(image_id)
    session = db()
    model_id = request.args.get("model", type=int)
    try:
        version = get_version(session, model_id)
    except LookupError as exc:
        abort(404, description=str(exc))
    row = ensure_embedding(session, settings(), image, version)
    arr = read_embedding(Path(row.path))  # as stored: float16, or float32 (older files, wide values)
    response = Response(arr.tobytes(), mimetype="application/octet-stream")
    response.headers["X-Embedding-Shape"] = "1,256,64,64"
    response.headers["X-Embedding-Dtype"] = WIRE_DTYPES[arr.dtype.itemsize]
    response.headers["X-Model-Version"] = str(version.id)
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


@bp.route("/models/<int:version_id>/decoder.onnx")
@login_required
def decoder(version_id: int):  # noqa: ANN201
    version = db().get(ModelVersion, version_id)
    if version is None:
        abort(404)
    variant = request.args.get("variant") or served_variant(settings())
    if variant not in DECODER_VARIANTS:
        abort(400, description=f"variant must be one of {', '.join(DECODER_VARIANTS)}")
    path = decoder_file(version, variant)
    response = send_file(path, mimetype="application/octet-stream", max_age=86400)
    response.headers["Cache-Control"] = "private, max-age=86400"
    return response


def _move_image(image_id: int, skip: bool):  # noqa: ANN202
    image = _image_for(image_id)
    user = current_db_user()
    body = request.get_json(silent=True)
    body = body if isinstance(body, dict) else {}
    session = db()
    try:
        if skip:
            reason = body.get("reason")
            changed = skip_image(session, user, image, reason if isinstance(reason, str) else "")
        else:
            changed = finish_image(session, user, image)
        session.commit()
    except (ReasonError, TransitionError) as exc:
        session.rollback()
        code = 400 if isinstance(exc, ReasonError) else 409
        return jsonify(ok=False, image_id=image_id, status=image.status, error=str(exc)), code
    return jsonify(
        ok=True,
        image_id=image_id,
        status=image.status,
        changed=changed,
        next_url=url_for("api.next_for_me", project_id=image.project_id),
    )


@bp.route("/api/images/<int:image_id>/skip", methods=["POST"], endpoint="skip_image")
@login_required
def skip_image_route(image_id: int):  # noqa: ANN201
    """Take an image out of the queue: JSON {"reason": "..."}; the lease is released."""
    return _move_image(image_id, skip=True)


@bp.route("/api/images/<int:image_id>/finish", methods=["POST"], endpoint="finish_image")
@login_required
def finish_image_route(image_id: int):  # noqa: ANN201
    """Mark an image done: JSON {} (body optional); the lease is released."""
    return _move_image(image_id, skip=False)
