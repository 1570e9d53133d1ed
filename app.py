"""Launch the HAR demo app: ``python app.py [--host HOST] [--port PORT] [--share]``.

Environment: HAR_HOST / HAR_PORT (then GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, as Hugging Face
Spaces set them); flags win. Every HAR_* variable is read through ``har_demo/settings.py`` (the
README's settings table). All UI logic lives in ``har_demo/ui``.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from har_demo import settings
    from har_demo.errors import HarError

    p = argparse.ArgumentParser(description="HAR demo: sitting / standing / walking-running, with attention maps")
    p.add_argument("--host", help="interface to listen on (env HAR_HOST, then GRADIO_SERVER_NAME; default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (env HAR_PORT, then GRADIO_SERVER_PORT; default 7860)")
    p.add_argument("--share", action="store_true", help="also open a temporary public gradio.live link (needs internet)")
    args = p.parse_args(argv)
    try:
        if args.host is None:
            args.host = settings.get("HAR_HOST") or os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1"
        if args.port is None:
            args.port = settings.get("HAR_PORT")
        if args.port is None:
            raw = os.environ.get("GRADIO_SERVER_PORT", "").strip() or "7860"
            if not raw.isdigit():
                p.error(f"GRADIO_SERVER_PORT must be a port number, got {raw!r}")
            args.port = int(raw)
    except HarError as err:
        p.error(str(err))
    if not 0 < args.port < 65536:
        p.error(f"port {args.port} is out of range 1-65535")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from har_demo.errors import HarError

    try:
        from har_demo import settings

        settings.check_all()  # every HAR_* variable: a bad one is one line before anything starts
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
