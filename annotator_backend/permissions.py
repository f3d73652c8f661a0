"""Who may do what, as data: the role x action table, and which action every HTTP route and
every Socket.IO event needs. The web layer enforces these; tests/test_permissions.py checks every
cell against the running app and fails on a route or event that has no entry here."""

from __future__ import annotations

from typing import NamedTuple

from .models import Role

ACTIONS = (
    "annotate",  # open the annotate page of a member project, send events, read its images
    "view_project",  # see a project's page and progress
    "manage_project",  # create projects, categories, members; import images
    "export",  # export COCO
    "manage_users",
    "manage_models",  # import, activate, export models
    "retrain",
)

PERMISSIONS: dict[str, frozenset[str]] = {
    Role.annotator.value: frozenset({"annotate"}),
    Role.manager.value: frozenset({"annotate", "view_project", "manage_project", "export"}),
    Role.admin.value: frozenset(ACTIONS),
}

# Annotators act only on projects they are members of; managers and admins on every project.
MEMBERSHIP_REQUIRED = frozenset({Role.annotator.value})

PUBLIC = "public"  # anyone, logged in or not
LOGIN = "login"  # any logged-in, active user


class Access(NamedTuple):
    """What a route or event needs: an action (or PUBLIC / LOGIN), checked on its project or not."""

    action: str
    per_project: bool = False


# Flask endpoint -> access; every method of an endpoint needs the same.
ROUTES: dict[str, Access] = {
    "static": Access(PUBLIC),
    "auth.login": Access(PUBLIC),
    "auth.logout": Access(LOGIN),
    "main.index": Access(LOGIN),
    "main.annotate": Access("annotate", per_project=True),
    "api.next_for_me": Access("annotate", per_project=True),
    "api.image_file": Access("annotate", per_project=True),
    "api.embedding": Access("annotate", per_project=True),
    "api.decoder": Access("annotate"),
    "api.skip_image": Access("annotate", per_project=True),
    "api.finish_image": Access("annotate", per_project=True),
    "api.open_image": Access("annotate", per_project=True),
    "projects.new": Access("manage_project"),
    "projects.detail": Access("view_project", per_project=True),
    "projects.job_progress": Access("view_project", per_project=True),
    "projects.edit": Access("manage_project", per_project=True),
    "projects.upload": Access("manage_project", per_project=True),
    "projects.requeue": Access("manage_project", per_project=True),
    "projects.export_coco": Access("export", per_project=True),
    "projects.export_events": Access("export", per_project=True),
    "admin.users": Access("manage_users"),
    "admin.deactivate_user": Access("manage_users"),
    "admin.reactivate_user": Access("manage_users"),
    "admin.models": Access("manage_models"),
    "admin.activate_model": Access("manage_models"),
    "rounds.index": Access("retrain"),
    "rounds.start": Access("retrain"),
    "rounds.watch": Access("retrain"),
    "rounds.cancel": Access("retrain"),
    "rounds.compare": Access("retrain"),
    "rounds.promote_version": Access("manage_models"),
    "rounds.discard_version": Access("manage_models"),
}

# Socket.IO event (default namespace) -> access.
SOCKET_EVENTS: dict[str, Access] = {
    "connect": Access(LOGIN),
    "event": Access("annotate", per_project=True),  # the event's image decides the project
    "watch_job": Access("retrain"),  # join a round's room for its live progress
}


def allowed(role: str, action: str) -> bool:
    """True when `role` may perform `action`."""
    if action not in ACTIONS:
        raise KeyError(f"unknown action {action!r}")
    return action in PERMISSIONS.get(role, frozenset())


def route_access(endpoint: str | None) -> Access:
    """The access entry of a Flask endpoint; KeyError for a route nobody classified."""
    if endpoint not in ROUTES:
        raise KeyError(f"route {endpoint!r} has no entry in permissions.ROUTES")
    return ROUTES[endpoint]
