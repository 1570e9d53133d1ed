"""Start-up and launch settings: models loaded once, a bounded queue, no analytics, no web fonts,
only the examples folder served (besides Gradio's own upload/cache folders)."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported

import gradio as gr

from .bank import ModelBank
from .layout import build_demo
from .limits import RequestLimits, guard_choices, guard_queue
from .settings import CONCURRENCY, MAX_UPLOAD, QUEUE_SIZE
from .text import UI_DIR, examples_dir

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
# System fonts only: the page fetches nothing from the internet (the default theme uses Google Fonts).
FONTS = ["ui-sans-serif", "system-ui", "Segoe UI", "Roboto", "Helvetica", "Arial", "sans-serif"]
MONO = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]


def atomic_image_cache() -> None:
    """Make Gradio's image cache writes atomic (idempotent).

    Gradio (6.x) saves every returned image *in place* at a path named by its content hash, so two
    requests returning the same image (two users analysing the same example) rewrite the file while
    the other one is downloading it: a truncated download ("Too little data for declared
    Content-Length" in the server log). Here an existing identical file is reused, else the bytes go
    to a temporary name that is renamed into place."""
    from gradio import processing_utils as pu

    if getattr(pu.save_pil_to_cache, "har_atomic", False):
        return

    def save_pil_to_cache(img, cache_dir: str, name: str = "image", format: str = "webp") -> str:
        data = pu.encode_pil_to_bytes(img, format)
        folder = Path(cache_dir) / pu.hash_bytes(data)
        folder.mkdir(exist_ok=True, parents=True)
        target = (folder / f"{name}.{format}").resolve()
        try:
            if target.stat().st_size == len(data):
                os.utime(target)  # handed out again: not aged out by delete_cache before it is fetched
                return str(target)
        except OSError:
            pass
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".partial_")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
        return str(target)

    save_pil_to_cache.har_atomic = True
    pu.save_pil_to_cache = save_pil_to_cache


def configure_logging(level: int = logging.INFO) -> None:
    """The app's own lines (which models loaded, and why others did not) on stderr; the HTTP
    client libraries stay quiet."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    root = logging.getLogger("har_demo")
    if not any(getattr(h, "har_demo", False) for h in root.handlers):
        handler.har_demo = True
        root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def create_app(bank: ModelBank | None = None) -> gr.Blocks:
    """The queued app; loads every available model once when no ``bank`` is given."""
    atomic_image_cache()
    guard_choices()
    bank = bank if bank is not None else ModelBank.load()
    demo, _ui, _cb = build_demo(bank)
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=QUEUE_SIZE)
    guard_queue(demo)  # at most MAX_JOBS_PER_CLIENT queued or running per client
    return demo


def theme() -> gr.themes.Base:
    return gr.themes.Soft(font=FONTS, font_mono=MONO)


def launch_kwargs() -> dict:
    """Everything ``demo.launch`` gets besides host/port/share."""
    return {
        "allowed_paths": [str(examples_dir())],
        "max_file_size": MAX_UPLOAD,
        "theme": theme(),
        "css_paths": [UI_DIR / "style.css"],
        "head_paths": [UI_DIR / "ui_head.html"],  # click-to-enlarge maps
        "ssr_mode": False,
        "show_error": False,  # exceptions are turned into readable lines by the callbacks
        "footer_links": ["api"],
        "pwa": False,
    }


def limits_middleware(demo: gr.Blocks):
    """The request limits (``limits.RequestLimits``) in front of ``demo``'s routes."""
    from starlette.middleware import Middleware

    return Middleware(RequestLimits, valid_fn=lambda index: index in demo.fns)


def launch(demo: gr.Blocks, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, share: bool = False, **kwargs):
    """``demo.launch`` with this app's settings (``kwargs`` override them, e.g. prevent_thread_lock);
    request limits run before Gradio parses any body."""
    settings = {**launch_kwargs(), "app_kwargs": {"middleware": [limits_middleware(demo)]}, **kwargs}
    return demo.launch(server_name=host, server_port=port, share=share, **settings)
