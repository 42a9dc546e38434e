"""``unmask serve``: a web page and a JSON API over :class:`unmask.Detector`."""

from unmask.serve.app import create_app
from unmask.serve.settings import ServeSettings

__all__ = ["create_app", "ServeSettings"]
