"""HTTP surface: thin over the services."""

from tether.server.app import create_app

__all__ = ["create_app"]
