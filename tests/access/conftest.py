"""Fixtures of the access tests (defined in ``access_support``)."""

from tests.access.access_support import client, world

__all__ = ["client", "world"]
