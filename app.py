"""Launch the HAR demo app: ``python app.py [--host HOST] [--port PORT] [--share]``.

Environment: HAR_HOST / HAR_PORT (then GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, as Hugging Face
Spaces set them); flags win. All UI logic lives in ``har_demo/ui``.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def _env(*names: str, default: str) -> str:
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    return default


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="HAR demo: sitting / standing / walking-running, with attention maps")
    p.add_argument("--host", default=_env("HAR_HOST", "GRADIO_SERVER_NAME", default="127.0.0.1"), help="interface to listen on (env HAR_HOST)")
    p.add_argument("--port", type=int, default=None, help="port (env HAR_PORT; default 7860)")
    p.add_argument("--share", action="store_true", help="also open a temporary public gradio.live link (needs internet)")
    args = p.parse_args(argv)
    if args.port is None:
        raw = _env("HAR_PORT", "GRADIO_SERVER_PORT", default="7860")
        try:
            args.port = int(raw)
        except ValueError:
            p.error(f"HAR_PORT must be a port number, got {raw!r}")
    if not 0 < args.port < 65536:
        p.error(f"port {args.port} is out of range 1-65535")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from har_demo.errors import HarError

    try:
        from har_demo.ui import configure_logging, create_app, launch

        configure_logging()  # the start-up log: each model loaded or not, with the reason
        demo = create_app()
    except HarError as err:  # e.g. a malformed HAR_* setting: one line, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
    launch(demo, host=args.host, port=args.port, share=args.share)
    return 0


if __name__ == "__main__":
    sys.exit(main())
