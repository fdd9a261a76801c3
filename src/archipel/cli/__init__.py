"""The ``archipel`` command line: the only composition root and config reader."""

from archipel.cli._app import app, main

__all__ = ["app", "main"]
