"""`annotator` subcommands of the retraining loop: retrain, evaluate, model promote / discard."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from .archs import ARCHS
from .cli import CliError
from .config import Settings
from .db import session_scope
from .projects import find_project


def _promote_and_wait(settings: Settings, version_id: int) -> dict:
    """Promote; without REDIS_URL the re-embedding jobs run here, so wait for them."""
    from .jobs import wait
    from .retrain import promote

    with session_scope(settings.database_url) as session:
        outcome = promote(session, settings, version_id)
    if not settings.redis_url:
        for job_id in outcome["embed_jobs"]:
            print(f"re-embedding (job {job_id})...", file=sys.stderr, flush=True)
            wait(settings, job_id, timeout=7 * 24 * 3600)
    return outcome


def model_promote(args: argparse.Namespace, settings: Settings) -> int:
    from .retrain import RetrainError

    try:
        outcome = _promote_and_wait(settings, args.id)
    except RetrainError as exc:
        raise CliError(str(exc)) from exc
    jobs = outcome["embed_jobs"]
    print(f"model version {outcome['active']} is active" + (f"; re-embedding jobs {jobs}" if jobs else ""))
    return 0


def model_discard(args: argparse.Namespace, settings: Settings) -> int:
    from .retrain import RetrainError, discard

    with session_scope(settings.database_url) as session:
        try:
            discard(session, args.id)
        except RetrainError as exc:
            raise CliError(str(exc)) from exc
    print(f"model version {args.id} discarded (kept for lineage, never active)")
    return 0


def retrain(args: argparse.Namespace, settings: Settings) -> int:
    import json

    from .retrain import RetrainError, RoundConfig, run_round

    phases = [""]

    def progress(p: dict) -> None:  # a line per phase, and every 10 steps
        if p.get("phase") != phases[-1]:
            phases.append(p.get("phase", ""))
            print(f"[{phases[-1]}]", file=sys.stderr, flush=True)
        if p.get("phase") == "training" and (p["step"] % 10 == 0 or p["step"] == p["total"]):
            eta = f", eta {p['eta_s']:.0f} s" if p["step"] < p["total"] else ""
            print(f"step {p['step']}/{p['total']} loss {p['loss']:.4f}{eta}", file=sys.stderr, flush=True)

    try:
        options = json.loads(args.options) if args.options else {}
    except json.JSONDecodeError as exc:
        raise CliError(f"--options is not JSON: {exc}") from exc
    if not isinstance(options, dict):
        raise CliError("--options must be a JSON object")
    try:
        with session_scope(settings.database_url) as session:
            cfg = RoundConfig.from_params(
                {
                    **options,
                    "project_id": find_project(session, args.project).id,
                    "base_version_id": args.base,
                    "sources": tuple(filter(None, args.sources.split(","))),
                    "mode": args.mode,
                    "minutes": args.minutes if args.steps is None else None,
                    "steps": args.steps,
                    "eval_limit": args.eval_limit,
                    "name": args.name,
                }
            )
            report = run_round(session, settings, cfg, progress=progress)
        if args.promote:
            report["promoted"] = _promote_and_wait(settings, report["version_id"])
    except RetrainError as exc:
        raise CliError(str(exc)) from exc
    print(json.dumps(report, indent=2))
    return 0


def evaluate(args: argparse.Namespace, settings: Settings) -> int:
    import json

    from .evaluation import EvalConfig
    from .evaluation import evaluate as run_evaluation
    from .model_registry import ensure_onnx, get_version, load_model
    from .sam_factory import load_sam

    decoder = None
    if args.model.isdigit() and not Path(args.model).is_file():
        with session_scope(settings.database_url) as session:
            version = get_version(session, int(args.model))
            model, decoder = load_model(version), ensure_onnx(version)
    elif args.type:
        model = load_sam(Path(args.model), args.type)
    else:
        raise CliError("MODEL is a model version id, or a checkpoint path with --type")
    if not Path(args.dataset_dir).is_dir():
        raise CliError(f"{args.dataset_dir}: no such folder")
    print(
        json.dumps(
            run_evaluation(
                model,
                Path(args.dataset_dir),
                limit=args.limit,
                cfg=EvalConfig(edge_snap=not args.no_edge_snap),
                decoder_path=decoder,
            ),
            indent=2,
        )
    )
    return 0


def add_commands(sub, model, cmd: Callable) -> None:  # noqa: ANN001
    """Add the subcommands to the `annotator` parser (`sub`) and its `model` group."""
    sp = cmd(
        model, "promote", model_promote, "activate a version; re-embed every project if its encoder changed"
    )
    sp.add_argument("id", type=int)
    sp = cmd(model, "discard", model_discard, "mark a version discarded (kept for lineage, never active)")
    sp.add_argument("id", type=int)

    sp = cmd(sub, "retrain", retrain, "run one retraining round in the foreground; prints the report as JSON")
    sp.add_argument("project")
    sp.add_argument("--base", type=int, help="base model version id (default: the active one)")
    sp.add_argument("--sources", default="accepted,verified,import", help="masks to train on")
    sp.add_argument("--mode", choices=["decoder", "full"], default="decoder")
    budget = sp.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, default=10.0, help="time budget (default 10)")
    budget.add_argument("--steps", type=int, help="step budget")
    sp.add_argument("--eval-limit", type=int, help="held-out masks to evaluate (default: all)")
    sp.add_argument("--name", help="name of the new version")
    sp.add_argument("--promote", action="store_true", help="promote the new version at the end")
    sp.add_argument(
        "--options",
        help="other round settings as JSON, e.g. "
        '\'{"lr": 3e-4, "train_options": {"batch_images": 4, "device": "cuda"}}\' '
        "(device: where the round trains)",
    )
    sp = cmd(sub, "evaluate", evaluate, "NoC@85/90 and mIoU@1/3/5 on a dataset folder, as JSON")
    sp.add_argument("model", help="a model version id, or a checkpoint path with --type")
    sp.add_argument("dataset_dir")
    sp.add_argument("--type", choices=ARCHS, help="architecture of a checkpoint path")
    sp.add_argument("--limit", type=int, help="evaluate the first N images only")
    sp.add_argument(
        "--no-edge-snap", action="store_true", help="the decoder's logits as they are (the page snaps them)"
    )
