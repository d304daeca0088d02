"""Use-cases: the only callers of the store (and, later, the bus)."""

from tether.services.context import RequestContext
from tether.services.events import EventService
from tether.services.sessions import SessionService

__all__ = ["EventService", "RequestContext", "SessionService"]
