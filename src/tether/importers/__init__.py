"""Readers that turn conversation files into :class:`Conversation` records (no I/O beyond
reading the file). The ``tether import conversations`` command sends them to a server."""

from tether.importers.model import Conversation, Turn
from tether.importers.readers import FORMATS, read_conversations

__all__ = ["FORMATS", "Conversation", "Turn", "read_conversations"]
