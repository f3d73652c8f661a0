"""Socket.IO handlers: authenticated connections, the exactly-once event log, watching a round."""

from __future__ import annotations

import logging
from typing import Any

from flask import request
from flask_login import current_user
from flask_socketio import SocketIO
from sqlalchemy.exc import SQLAlchemyError

from annotator_backend.access import AccessDenied
from annotator_backend.events import EventError, record_event
from annotator_backend.models import User
from annotator_backend.rle import RLEError

from .database import close_db, db

log = logging.getLogger(__name__)


def register(socketio: SocketIO) -> None:
    """Attach the handlers to `socketio`."""

    @socketio.on("connect")
    def on_connect(auth: Any = None) -> bool:
        if not current_user.is_authenticated:
            log.info("refused Socket.IO connection without a login from %s", request.remote_addr)
            return False
        return True

    @socketio.on("event")
    def on_event(data: Any) -> dict[str, Any]:
        if not current_user.is_authenticated:
            return {"ok": False, "error": "log in first"}
        # The event's own request session: the one the login manager loaded the user with, so
        # the user comes from its identity map and one pooled connection serves the event.
        session = db()
        try:
            user = session.get(User, int(current_user.id))
            if user is None or not user.is_active:
                return {"ok": False, "error": "account disabled"}
            return record_event(session, user, data)
        except (EventError, RLEError, AccessDenied) as exc:
            uuid = data.get("uuid") if isinstance(data, dict) else None
            return {"ok": False, "uuid": uuid, "error": str(exc)}
        except SQLAlchemyError:
            log.exception("event not stored")
            return {
                "ok": False,
                "retry": True,
                "error": "database error: the event was not stored, send it again",
            }
        finally:
            close_db()

    @socketio.on("watch_job")
    def on_watch_job(data: Any) -> dict[str, Any]:
        from .rounds import watch_job

        return watch_job(socketio, data)
