"""Who may do what: a role x action table that the code and the tests both read."""

from __future__ import annotations

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


def allowed(role: str, action: str) -> bool:
    """True when `role` may perform `action`."""
    if action not in ACTIONS:
        raise KeyError(f"unknown action {action!r}")
    return action in PERMISSIONS.get(role, frozenset())
