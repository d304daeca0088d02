"""Makes `clients/python/tests` the package `python.tests`, so its conftest never shadows
the repository root's `conftest` module (pytest imports both in prepend mode)."""
