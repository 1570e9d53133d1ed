"""Gradio UI: layout + callbacks over the library (models registry, explain, data, evaluation).

``create_app()`` builds the queued app with every available model loaded once; ``launch()``
starts it with this project's settings. UI text and examples live in ``strings.json``,
``help.md`` and ``examples.json`` next to this file.
"""

from __future__ import annotations


def create_app(bank=None):
    from .server import create_app as _create

    return _create(bank)


def configure_logging() -> None:
    from .server import configure_logging as _configure

    _configure()


def launch(demo, host: str = "127.0.0.1", port: int = 7860, share: bool = False, **kwargs):
    from .server import launch as _launch

    return _launch(demo, host, port, share, **kwargs)


__all__ = ["configure_logging", "create_app", "launch"]
