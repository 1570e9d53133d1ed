"""The Gradio Blocks: three tabs (compare, batch, model cards) + help, and the named API.

Cards are built by looping over the bank (one per available model, registry order); unavailable
models are listed under the cards with why and how to enable them. Every event is wired here;
the work happens in ``callbacks`` / ``api``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from ..labels import CLASSES
from .api import Api
from .bank import ModelBank
from .callbacks import Callbacks
from .cards import model_cards_markdown, results_markdown
from .render import card_header, unavailable_markdown
from .settings import CONCURRENCY
from .text import examples, help_markdown, msg, strings, text

DEFAULT_OPACITY = 0.5
# Model work is CPU/GPU-bound: every event that runs a model shares ONE concurrency group, so at
# most CONCURRENCY of them run at a time in total; re-blending/box events have their own group.
MODEL_WORK = {"concurrency_id": "models", "concurrency_limit": CONCURRENCY}
LIGHT_WORK = {"concurrency_id": "render", "concurrency_limit": 4}
STATE_TTL_S = 3600  # a session's stored maps are dropped after an hour
CARD_MIN_WIDTH = 260


@dataclass
class CardUI:
    column: Any
    header: Any
    label: Any
    overlay: Any
    method: Any
    info: Any


@dataclass
class UI:
    """Handles to the components the callbacks read and write."""

    cards: dict[str, CardUI] = field(default_factory=dict)
    image: Any = None
    models: Any = None
    target: Any = None
    opacity: Any = None
    box: Any = None
    clear_box: Any = None
    run: Any = None
    status: Any = None
    state: Any = None
    corner: Any = None
    unavailable: Any = None
    examples: Any = None
    batch_files: Any = None
    batch_models: Any = None
    batch_run: Any = None
    batch_status: Any = None
    batch_metrics: Any = None
    batch_confusion: Any = None
    batch_gallery: Any = None
    batch_csv: Any = None
    cards_md: Any = None
    results_md: Any = None
    cards_refresh: Any = None

    def card_outputs(self) -> list:
        return [c for card in self.cards.values() for c in (card.column, card.label, card.overlay, card.info)]

    def method_inputs(self) -> list:
        return [card.method for card in self.cards.values()]


def build_demo(bank: ModelBank) -> tuple[gr.Blocks, UI, Callbacks]:
    """The app for ``bank``; returns (demo, component handles, callbacks) so tests can drive it."""
    s = strings()
    ui = UI()
    available = bank.available_names()
    target_choices = [text("controls", "target_predicted"), *CLASSES]
    with gr.Blocks(title=s["browser_title"], analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(f"# {s['title']}\n\n{s['intro']}")
        with gr.Tabs():
            with gr.Tab(s["tabs"]["compare"], id="compare"):
                _compare_tab(ui, bank, available, target_choices)
            with gr.Tab(s["tabs"]["batch"], id="batch"):
                _batch_tab(ui, available)
            with gr.Tab(s["tabs"]["cards"], id="cards"):
                ui.cards_refresh = gr.Button(text("controls", "cards_refresh"), size="sm")
                ui.results_md = gr.Markdown(results_markdown())
                ui.cards_md = gr.Markdown(model_cards_markdown(bank))
            with gr.Tab(s["tabs"]["help"], id="help"):
                gr.Markdown(help_markdown())
        cb = Callbacks(bank, ui)
        _wire(ui, cb, target_choices)
        api = Api(bank)
        _api(api)
    cb.blocks = api.blocks = demo  # long work (batches) stops when its client has gone away
    friendly_rejections(demo)
    return demo, ui, cb


def friendly_rejections(demo: gr.Blocks) -> None:
    """Inputs Gradio itself refuses before our function runs (too few values, a path that was not
    uploaded, a FileData with only a URL, a number that is not one) come back to the client as one
    ``gr.Error`` line naming the endpoint - not ``{"error": null}`` plus a server traceback."""
    original = demo.preprocess_data

    async def preprocess_data(block_fn, inputs, state, explicit_call=False):
        try:
            return await original(block_fn, inputs, state, explicit_call)
        except gr.Error:
            raise
        except Exception as err:  # noqa: BLE001 - every rejection becomes one line for the client
            raise gr.Error(rejection_line(block_fn, inputs, err), print_exception=False) from None

    demo.preprocess_data = preprocess_data


def rejection_line(block_fn: Any, inputs: Any, err: BaseException) -> str:
    """One line: which input of which endpoint Gradio refused, and what was expected."""
    import re

    from .redact import echo, redact_paths

    name = f"/{block_fn.api_name}" if getattr(block_fn, "api_name", None) else "this event"
    blocks = list(block_fn.inputs)
    wanted = [str(getattr(b, "label", None) or type(b).__name__) for b in blocks]
    if not isinstance(inputs, (list, tuple)) or len(inputs) < len(wanted):
        got = len(inputs) if isinstance(inputs, (list, tuple)) else 0
        return f"{name} takes {len(wanted)} inputs ({', '.join(wanted)}), got {got}"
    text = str(err)
    files = [i for i, b in enumerate(blocks) if isinstance(b, (gr.File, gr.Image))]
    if "FileData" in text or "not uploaded" in text or "upload" in text.lower():
        bad = next((i for i in files if not (isinstance(inputs[i], dict) and inputs[i].get("path"))), files[0] if files else None)
        what = wanted[bad] if bad is not None else "file"
        return f"{name}: {what} must be an uploaded file (gradio_client.handle_file); a path, number or URL alone is refused"
    found = re.search(r"at index (\d+)", text)
    if found and int(found.group(1)) < len(wanted):
        i = int(found.group(1))
        kind = type(blocks[i]).__name__.lower()
        return f"{name}: {wanted[i]} {echo(inputs[i], 40)} is not a valid {kind} value"
    reason = redact_paths((text.strip().splitlines() or [type(err).__name__])[0])
    if len(reason) > 160:
        reason = reason[:157] + "..."
    return f"{name}: invalid input ({reason}); inputs are {', '.join(wanted)}"



def _compare_tab(ui: UI, bank: ModelBank, available: list[str], target_choices: list[str]) -> None:
    c = lambda key: text("controls", key)
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            ui.image = gr.Image(
                label=c("image"), type="filepath", sources=["upload", "webcam", "clipboard"], height=320, elem_id="photo"
            )
            found = examples()
            ui.examples = None
            if found:
                ui.examples = gr.Examples(
                    examples=[[e["path"]] for e in found],
                    inputs=[ui.image],
                    label=c("examples"),
                    example_labels=[e["caption"] for e in found],
                    cache_examples=False,
                    examples_per_page=8,
                )
            ui.run = gr.Button(c("run"), variant="primary", elem_id="analyse")
            ui.models = gr.CheckboxGroup(available, value=available, label=c("models"), info=c("models_info"), elem_id="models")
            ui.target = gr.Radio(target_choices, value=target_choices[0], label=c("target"), info=c("target_info"))
            ui.opacity = gr.Slider(0.0, 1.0, value=DEFAULT_OPACITY, step=0.05, label=c("opacity"), info=c("opacity_info"), elem_id="opacity")
            with gr.Row():
                ui.box = gr.Textbox(label=c("box"), placeholder=c("box_placeholder"), scale=4)
                ui.clear_box = gr.Button(c("box_clear"), size="sm", scale=1, min_width=80)
            ui.status = gr.Markdown(msg("ready", available=len(available), total=len(bank.entries)), elem_id="status")
        with gr.Column(scale=3):
            with gr.Row(equal_height=False, elem_id="cards"):
                for name in available:
                    ui.cards[name] = _card(bank, name)
            ui.unavailable = gr.Markdown(unavailable_markdown(bank.unavailable()), elem_id="unavailable")
    ui.state = gr.State(None, time_to_live=STATE_TTL_S)
    ui.corner = gr.State(None, time_to_live=STATE_TTL_S)


def _card(bank: ModelBank, name: str) -> CardUI:
    entry = bank.get(name)
    with gr.Column(min_width=CARD_MIN_WIDTH, visible=False, elem_classes=["har-card"], elem_id=f"card-{name}") as column:
        header = gr.Markdown(card_header(entry))
        label = gr.Label(num_top_classes=len(CLASSES), show_label=False)
        overlay = gr.Image(show_label=False, interactive=False, format="jpeg", height=240, buttons=["download", "fullscreen"])
        method = gr.Dropdown(
            entry.methods,
            value=entry.default_method,
            label=text("controls", "method"),
            interactive=len(entry.methods) > 1,
            visible=bool(entry.methods),
        )
        info = gr.Markdown()
    return CardUI(column, header, label, overlay, method, info)


def _batch_tab(ui: UI, available: list[str]) -> None:
    c = lambda key: text("controls", key)
    with gr.Row():
        with gr.Column(scale=1):
            ui.batch_files = gr.File(label=c("batch_files"), file_count="multiple", type="filepath")
            ui.batch_models = gr.CheckboxGroup(available, value=available, label=c("batch_models"))
            ui.batch_run = gr.Button(c("batch_run"), variant="primary")
            ui.batch_status = gr.Markdown()
            ui.batch_csv = gr.File(label=c("batch_csv"), interactive=False)
        with gr.Column(scale=2):
            ui.batch_metrics = gr.Dataframe(label=c("batch_metrics"), interactive=False)
            ui.batch_confusion = gr.Plot(label=c("batch_confusion"))
            ui.batch_gallery = gr.Gallery(label=c("batch_gallery"), columns=4, height="auto")


def _private(name: str) -> dict:
    """UI-only events: not callable by API clients, and named so they never take an API name."""
    return {"api_visibility": "private", "api_name": f"ui_{name}"}


def _wire(ui: UI, cb: Callbacks, target_choices: list[str]) -> None:
    analyse_inputs = [ui.image, ui.models, ui.target, ui.opacity, ui.box, *ui.method_inputs()]
    compare_outputs = [ui.state, ui.status, *ui.card_outputs()]
    # preprocess=False: the photo reaches the callback undecoded, so a bad file gets our message
    ui.run.click(cb.analyse, analyse_inputs, compare_outputs, preprocess=False, **_private("analyse"), **MODEL_WORK)
    if ui.examples is not None:  # a click on an example analyses it (lazily cached per setting)
        ui.examples.load_input_event.then(
            cb.analyse, analyse_inputs, compare_outputs, preprocess=False, **_private("example"), **MODEL_WORK
        )
    ui.opacity.change(
        cb.reblend, [ui.state, ui.opacity, ui.box], [c.overlay for c in ui.cards.values()] + [ui.status],
        show_progress="hidden", trigger_mode="always_last", **_private("opacity"), **LIGHT_WORK,
    )
    box_outputs = [ui.status] + [c for card in ui.cards.values() for c in (card.overlay, card.info)]
    ui.box.submit(cb.box_changed, [ui.state, ui.opacity, ui.box], box_outputs, **_private("box_submit"), **LIGHT_WORK)
    ui.box.blur(cb.box_changed, [ui.state, ui.opacity, ui.box], box_outputs, **_private("box_blur"), **LIGHT_WORK)
    ui.image.select(
        cb.corner_clicked, [ui.corner, ui.state, ui.opacity], [ui.corner, ui.box, *box_outputs], **_private("corner"), **LIGHT_WORK
    )
    ui.clear_box.click(cb.clear_box, None, [ui.corner, ui.box], **_private("clear_box"), **LIGHT_WORK).then(
        cb.box_changed, [ui.state, ui.opacity, ui.box], box_outputs, **_private("clear_box_then"), **LIGHT_WORK
    )
    ui.target.change(cb.target_changed, [ui.state, ui.target, ui.opacity, ui.box, *ui.method_inputs()], compare_outputs, **_private("target"), **MODEL_WORK)
    for name, card in ui.cards.items():
        card.method.change(
            cb.method_changed(name), [ui.state, card.method, ui.target, ui.opacity, ui.box],
            [ui.state, ui.status, card.column, card.label, card.overlay, card.info], **_private(f"method_{name}"), **MODEL_WORK,
        )
    batch_outputs = [ui.batch_metrics, ui.batch_confusion, ui.batch_gallery, ui.batch_csv, ui.batch_status]
    ui.batch_run.click(cb.batch, [ui.batch_files, ui.batch_models], batch_outputs, **_private("batch"), **MODEL_WORK)
    ui.cards_refresh.click(cb.cards, None, [ui.cards_md, ui.results_md], **_private("cards"), **LIGHT_WORK)


def _api(api: Api) -> None:
    """Hidden components + triggers for the named endpoints (the visible UI does not use them)."""
    with gr.Column(visible=False):
        image = gr.File(label="image", type="filepath")
        files = gr.File(label="files", file_count="multiple", type="filepath")
        models = gr.Textbox(label="models", info="comma-separated names; empty = every available model")
        model = gr.Textbox(label="model")
        method = gr.Textbox(label="method", info="empty = the model's default")
        target = gr.Textbox(label="target", value="predicted", info="predicted, " + ", ".join(CLASSES))
        opacity = gr.Number(label="opacity", value=DEFAULT_OPACITY, minimum=0, maximum=1)
        box = gr.Textbox(label="box", info="person box x0, y0, x1, y1 in photo pixels (optional)")
        result = gr.JSON(label="result")
        overlays = gr.Gallery(label="overlays", format="jpeg")
        overlay = gr.Image(label="overlay", format="jpeg")
        csv_file = gr.File(label="predictions_csv")
        models_json = gr.JSON(label="models")
        triggers = [gr.Button(visible=False) for _ in range(4)]
    triggers[0].click(api.predict, [image, models, target, opacity], [result, overlays], api_name="predict", **MODEL_WORK)
    triggers[1].click(api.explain, [image, model, method, target, opacity, box], [overlay, result], api_name="explain", **MODEL_WORK)
    triggers[2].click(api.batch, [files, models], [result, csv_file], api_name="batch", **MODEL_WORK)
    triggers[3].click(api.models, None, [models_json], api_name="models", **LIGHT_WORK)
