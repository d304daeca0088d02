"""Tether: a self-hosted backend for AI agents (sessions, events, state, memory)."""

__version__ = "0.1.0"

__all__ = ["__version__"]
