"""The `annotator` command line (DESIGN.md §5)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sqlalchemy import select

from .accounts import AccountError, add_user, find_user
from .archs import ARCHS, CheckpointError
from .config import Settings, load_settings
from .db import session_scope, upgrade
from .images import ImageError
from .models import ModelVersion
from .projects import ProjectError, add_member, create_project, find_project

Handler = Callable[[argparse.Namespace, Settings], int]


class CliError(Exception):
    """A message for the user; exit status 2."""


def _db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from .model_registry import register_bootstrap

    upgrade(settings.database_url)
    with session_scope(settings.database_url) as session:
        version = register_bootstrap(session, settings)
        if version is not None:
            print(f"registered and activated the bootstrap model (version {version.id})")
    print("database is up to date")
    return 0


def _user_add(args: argparse.Namespace, settings: Settings) -> int:
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else args.password
    if not password:
        raise CliError("give the password on standard input with --password-stdin")
    with session_scope(settings.database_url) as session:
        user = add_user(session, args.name, args.role, password)
        print(f"user {user.username} ({user.role}) created, id {user.id}")
    return 0


def _project_create(args: argparse.Namespace, settings: Settings) -> int:
    with session_scope(settings.database_url) as session:
        project = create_project(session, args.name, args.categories.split(","))
        for name in filter(None, (args.members or "").split(",")):
            add_member(session, project, find_user(session, name))
        print(f"project {project.name} created, id {project.id}")
    return 0


def _project_add_member(args: argparse.Namespace, settings: Settings) -> int:
    with session_scope(settings.database_url) as session:
        add_member(session, find_project(session, args.project), find_user(session, args.user))
    print(f"{args.user} is a member of {args.project}")
    return 0


def _images_import(args: argparse.Namespace, settings: Settings) -> int:
    from .images import import_folder

    with session_scope(settings.database_url) as session:
        report = import_folder(session, settings, find_project(session, args.project), Path(args.dir))
    for name, why in report.rejected.items():
        print(f"rejected {name}: {why}", file=sys.stderr)
    print(f"added {len(report.added)}, duplicates {len(report.duplicates)}, rejected {len(report.rejected)}")
    return 0 if report.added or not report.rejected else 1


def _model_import(args: argparse.Namespace, settings: Settings) -> int:
    from .model_registry import import_checkpoint

    with session_scope(settings.database_url) as session:
        v = import_checkpoint(
            session, settings, Path(args.path), args.type, name=args.name, activate=args.activate
        )
        print(
            f"model version {v.id} ({v.name}, {v.arch}) registered{' and activated' if v.is_active else ''}"
        )
    return 0


def _model_list(args: argparse.Namespace, settings: Settings) -> int:
    with session_scope(settings.database_url) as session:
        for v in session.scalars(select(ModelVersion).order_by(ModelVersion.id)):
            flags = ("*active* " if v.is_active else "") + ("" if v.trained else "UNTRAINED ")
            print(f"{v.id:>4}  {v.arch:<9} {v.kind:<10} {flags}{v.name}")
    return 0


def _model_activate(args: argparse.Namespace, settings: Settings) -> int:
    from .model_registry import activate_version

    with session_scope(settings.database_url) as session:
        v = activate_version(session, args.id)
        print(f"model version {v.id} ({v.name}) is active")
    return 0


def _model_export_onnx(args: argparse.Namespace, settings: Settings) -> int:
    from .model_registry import get_version, load_model
    from .onnx_export import export_decoder

    with session_scope(settings.database_url) as session:
        v = get_version(session, args.id)
        export_decoder(load_model(v), Path(args.out))
        print(f"decoder of model version {v.id} ({v.name}) written to {args.out}")
    return 0


def _embed(args: argparse.Namespace, settings: Settings) -> int:
    from .embeddings import embed_images, missing_images
    from .model_registry import get_version

    with session_scope(settings.database_url) as session:
        project = find_project(session, args.project)
        version = get_version(session, None)
        if not version.trained:
            print(f"WARNING: model '{version.name}' is UNTRAINED: its masks are random", file=sys.stderr)
        todo = missing_images(session, project, version)
        print(f"{len(todo)} images of {project.name} to embed with model version {version.id}")
        embed_images(session, settings, todo, version)
    return 0


def _embed_file(args: argparse.Namespace, settings: Settings) -> int:
    from .embeddings import embed_file
    from .model_registry import get_version, load_model

    with session_scope(settings.database_url) as session:
        version = get_version(session, None)
    emb = embed_file(load_model(version), Path(args.image))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, emb.astype(np.float32))
    print(f"embedding {list(emb.shape)} float32 written to {out} (model version {version.id})")
    return 0


def _export_coco(args: argparse.Namespace, settings: Settings) -> int:
    from .coco_export import export_project

    with session_scope(settings.database_url) as session:
        project = find_project(session, args.project)
        events = Path(args.events) if args.events else None
        count = export_project(session, project, Path(args.out), args.format, args.status, events)
    print(
        f"{count} annotations of {project.name} written to {args.out}"
        + (f", events to {events}" if events else "")
    )
    return 0


def _import_coco(args: argparse.Namespace, settings: Settings) -> int:
    from .coco_import import CocoImportError, import_coco

    with session_scope(settings.database_url) as session:
        project = find_project(session, args.project)
        try:
            count = import_coco(session, project, Path(args.file))
        except CocoImportError as exc:
            raise CliError(f"{exc}; nothing was imported") from exc
    print(f"{count} masks imported into {project.name} (source: import)")
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from .demo import seed_demo

    with session_scope(settings.database_url) as session:
        seed_demo(session, settings)
    return 0


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.redis_url:
        raise CliError("set REDIS_URL: without it jobs run inside `annotator serve`")
    from .celery_app import celery_app

    celery_app.worker_main(["worker", "--pool=solo", "--concurrency=1", "--loglevel=INFO"])
    return 0


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from app import create_app
    from app.extensions import socketio

    app = create_app()
    print(f"serving on http://127.0.0.1:{settings.port}", flush=True)
    socketio.run(app, host="127.0.0.1", port=settings.port, allow_unsafe_werkzeug=True, use_reloader=False)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="annotator", description="SAM annotation tool")
    sub = p.add_subparsers(dest="command", required=True)

    def cmd(parent, name: str, handler: Handler, help_: str) -> argparse.ArgumentParser:  # noqa: ANN001
        sp = parent.add_parser(name, help=help_)
        sp.set_defaults(handler=handler)
        return sp

    db = sub.add_parser("db", help="database").add_subparsers(dest="db_command", required=True)
    cmd(db, "upgrade", _db_upgrade, "migrate the database to the latest schema")

    user = sub.add_parser("user", help="users").add_subparsers(dest="user_command", required=True)
    sp = cmd(user, "add", _user_add, "create a user")
    sp.add_argument("name")
    sp.add_argument("--role", required=True, choices=["annotator", "manager", "admin"])
    sp.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    sp.add_argument("--password", help=argparse.SUPPRESS)

    project = sub.add_parser("project", help="projects").add_subparsers(dest="project_command", required=True)
    sp = cmd(project, "create", _project_create, "create a project")
    sp.add_argument("name")
    sp.add_argument("--categories", required=True, help="comma-separated category names")
    sp.add_argument("--members", help="comma-separated usernames of annotators")
    sp = cmd(project, "add-member", _project_add_member, "add a user to a project")
    sp.add_argument("project")
    sp.add_argument("user")

    images = sub.add_parser("images", help="images").add_subparsers(dest="images_command", required=True)
    sp = cmd(images, "import", _images_import, "import the images of a server folder")
    sp.add_argument("project")
    sp.add_argument("dir")

    model = sub.add_parser("model", help="model versions").add_subparsers(dest="model_command", required=True)
    sp = cmd(model, "import", _model_import, "import an official SAM checkpoint")
    sp.add_argument("path")
    sp.add_argument("--type", required=True, choices=ARCHS)
    sp.add_argument("--name")
    sp.add_argument("--activate", action="store_true")
    cmd(model, "list", _model_list, "list model versions")
    sp = cmd(model, "activate", _model_activate, "make a model version the active one")
    sp.add_argument("id", type=int)
    sp = cmd(model, "export-onnx", _model_export_onnx, "write the decoder of a version as ONNX")
    sp.add_argument("id", type=int, nargs="?")
    sp.add_argument("--out", required=True)
    from .cli_rounds import add_commands

    add_commands(sub, model, cmd)

    sp = cmd(sub, "embed", _embed, "embed every image of a project with the active model (resumable)")
    sp.add_argument("project")
    sp = cmd(sub, "embed-file", _embed_file, "embed one image with the active model")
    sp.add_argument("image")
    sp.add_argument("--out", required=True)
    export = sub.add_parser("export", help="exports").add_subparsers(dest="export_command", required=True)
    sp = cmd(export, "coco", _export_coco, "export a project's masks as COCO JSON (streaming)")
    sp.add_argument("project")
    sp.add_argument("--out", required=True)
    sp.add_argument("--format", choices=["rle", "polygon"], default="rle")
    sp.add_argument("--status", choices=["accepted", "verified", "all"], default="accepted")
    sp.add_argument("--events", help="also write the masks' event logs and timings as JSON Lines here")
    imp = sub.add_parser("import", help="imports").add_subparsers(dest="import_command", required=True)
    sp = cmd(imp, "coco", _import_coco, "import COCO annotations as masks (pre-labels)")
    sp.add_argument("project")
    sp.add_argument("file")
    cmd(sub, "demo", _demo, "create the demo project, users, model and embeddings")
    cmd(sub, "worker", _worker, "run a Celery worker for background jobs (needs REDIS_URL)")
    cmd(sub, "serve", _serve, "serve the web app on 127.0.0.1:$PORT")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = load_settings()
    try:
        return args.handler(args, settings)
    except (CliError, AccountError, ProjectError, CheckpointError, ImageError, LookupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
