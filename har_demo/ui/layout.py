"""The Gradio Blocks: three tabs (compare, batch, model cards) + help, and the named API.

The compare tab's first screen answers: the photo and Analyse on the left; on the right the
headline verdict (the model best on unseen sources, ``trust``), the photo with the person's
skeleton and box next to that model's map and a colour legend, then one compact card per
available model ordered by the same accuracy; unavailable models fold into one line. Cards are
built by looping over the bank (no per-model code). Every event is wired here; the work happens
in ``callbacks`` / ``api``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from ..labels import CLASSES
from . import batch as bt
from .api import Api
from .bank import ModelBank
from .callbacks import Callbacks
from .cards import model_cards_markdown, results_markdown
from .render import card_header, legend_html, unavailable_markdown, verdict_markdown
from .settings import CONCURRENCY
from .text import examples, help_markdown, msg, strings, text
from .trust import accuracies, headline, ranked

DEFAULT_OPACITY = 0.5
# Model work is CPU/GPU-bound: every event that runs a model shares ONE concurrency group, so at
# most CONCURRENCY of them run at a time in total; re-blending/box events have their own group.
MODEL_WORK = {"concurrency_id": "models", "concurrency_limit": CONCURRENCY}
LIGHT_WORK = {"concurrency_id": "render", "concurrency_limit": 4}
# Checking a new upload decodes the photo (in the sandbox): its own group of one, so uploads hammered
# by one visitor wait behind each other and never hold the slots /models and the redraws share.
UPLOAD_CHECK = {"concurrency_id": "upload_check", "concurrency_limit": 1}
STATE_TTL_S = 3600  # a session's stored maps are dropped after an hour
CARD_MIN_WIDTH = 195
PHOTO_HEIGHT = 300
HEADLINE_PHOTO_HEIGHT = 150  # the photo with skeleton and box, under the verdict
HEADLINE_MAP_HEIGHT = 300  # the leading model's map: >= 400 px on the long side of a landscape photo at 1400 px
CARD_MAP_HEIGHT = 88  # click a card's map to enlarge it (ui_head.html); on a phone it spans the card (style.css)
CARD_PART_MIN_WIDTH = 110  # probabilities and map side by side in a card (3 cards a row, two rows fit)


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
    accuracy: dict = field(default_factory=dict)  # model -> trust.UnseenAccuracy | None
    image: Any = None
    verdict: Any = None
    photo_view: Any = None
    person_pick: Any = None  # "Person" (whose cards): auto, 1..N (shown for photos with several people)
    photo_note: Any = None
    best_map: Any = None
    skeleton: Any = None
    mask_outline: Any = None
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
    batch_predictions: Any = None
    batch_labelled: Any = None
    batch_confusion: Any = None
    batch_gallery: Any = None
    batch_csv: Any = None
    cards_md: Any = None
    results_md: Any = None
    cards_refresh: Any = None
    cards_reliability_model: Any = None
    cards_reliability: Any = None

    def card_outputs(self) -> list:
        return [c for card in self.cards.values() for c in (card.column, card.label, card.overlay, card.info)]

    def method_inputs(self) -> list:
        return [card.method for card in self.cards.values()]

    def headline_outputs(self) -> list:
        return [self.verdict, self.photo_view, self.best_map, self.photo_note]

    def view_inputs(self) -> list:
        """What every redraw reads: stored analysis, opacity, box text, skeleton, mask outline."""
        return [self.state, self.opacity, self.box, self.skeleton, self.mask_outline]


def build_demo(bank: ModelBank) -> tuple[gr.Blocks, UI, Callbacks]:
    """The app for ``bank``; returns (demo, component handles, callbacks) so tests can drive it."""
    s = strings()
    ui = UI()
    available = bank.available_names()
    target_choices = [text("controls", "target_predicted"), *CLASSES]
    with gr.Blocks(title=s["browser_title"], analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(f"## {s['title']}\n\n{s['intro']}", elem_id="intro")
        with gr.Tabs(elem_id="tabs"):
            with gr.Tab(s["tabs"]["compare"], id="compare"):
                _compare_tab(ui, bank, available, target_choices)
            with gr.Tab(s["tabs"]["batch"], id="batch"):
                _batch_tab(ui, available)
            with gr.Tab(s["tabs"]["cards"], id="cards"):
                ui.cards_refresh = gr.Button(text("controls", "cards_refresh"), size="sm")
                ui.cards_md = gr.Markdown(model_cards_markdown(bank), elem_id="model-cards")
                with gr.Row():  # reliability diagram on unseen sources, one model at a time
                    ui.cards_reliability_model = gr.Dropdown(available, value=None, label=text("controls", "cards_reliability"))
                    ui.cards_reliability = gr.Plot(label=text("controls", "cards_reliability_plot"))
                with gr.Accordion(text("controls", "cards_results_heading"), open=False, elem_id="results-tables"):
                    ui.results_md = gr.Markdown(results_markdown())
            with gr.Tab(s["tabs"]["help"], id="help"):
                gr.Markdown(help_markdown())
        cb = Callbacks(bank, ui)
        _wire(ui, cb, target_choices)
        api = Api(bank)
        _api(api, headline(available, ui.accuracy))
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
    ui.accuracy = accuracies([bank.get(n) for n in available])
    order = ranked(available, ui.accuracy)
    lead = headline(available, ui.accuracy)
    # Phone (style.css, <= 480 px): #left and #right dissolve into one column ordered photo -> Analyse
    # -> verdict (photo, map) -> cards -> examples -> settings; every block below has an elem_id for that.
    with gr.Row(equal_height=False, elem_id="compare"):
        with gr.Column(scale=1, min_width=300, elem_id="left"):
            gr.Markdown(f"**{c('image')}**", elem_classes=["har-caption"], elem_id="photo-caption")
            ui.image = gr.Image(
                label=c("image"), show_label=False, type="filepath", sources=["upload", "webcam", "clipboard"], height=PHOTO_HEIGHT,
                elem_id="photo",
            )
            ui.run = gr.Button(c("run"), variant="primary", elem_id="analyse")
            ui.status = gr.Markdown(msg("ready", available=len(available), total=len(bank.entries)), elem_id="status")
            ui.examples = _examples(ui, c("examples"))
            with gr.Accordion(c("settings"), open=False, elem_id="settings"):
                ui.models = gr.CheckboxGroup(order, value=order, label=c("models"), info=c("models_info"), elem_id="models")
                ui.target = gr.Radio(target_choices, value=target_choices[0], label=c("target"), info=c("target_info"))
                ui.opacity = gr.Slider(0.0, 1.0, value=DEFAULT_OPACITY, step=0.05, label=c("opacity"), info=c("opacity_info"), elem_id="opacity")
                ui.skeleton = gr.Checkbox(value=True, label=c("skeleton"), elem_id="skeleton")
                ui.mask_outline = gr.Checkbox(value=False, label=c("mask_outline"), elem_id="mask-outline")
                with gr.Row():
                    ui.box = gr.Textbox(label=c("box"), placeholder=c("box_placeholder"), scale=4, elem_id="box")
                    ui.clear_box = gr.Button(c("box_clear"), size="sm", scale=1, min_width=80, elem_id="clear-box")
        with gr.Column(scale=4, elem_id="right"):
            _headline(ui, lead)
            with gr.Row(equal_height=False, elem_id="cards"):
                for name in order:
                    ui.cards[name] = _card(bank, name, ui.accuracy.get(name), name == lead)
            ui.unavailable = gr.HTML(unavailable_markdown(bank.unavailable()), elem_id="unavailable")
    ui.state = gr.State(None, time_to_live=STATE_TTL_S)
    ui.corner = gr.State(None, time_to_live=STATE_TTL_S)


def _examples(ui: UI, label: str):
    """The example photos as thumbnails (a click loads and analyses one); credits are in the label."""
    found = examples()
    if not found:
        return None
    return gr.Examples(examples=[[e["path"]] for e in found], inputs=[ui.image], label=label, cache_examples=False,
                       examples_per_page=8, elem_id="examples")


def _headline(ui: UI, lead: str | None) -> None:
    """The answer block: verdict with the photo (skeleton, box) under it, the leading model's map
    beside it with the colour legend and the photo note (size, person, how to set a box) under
    that - the map column has room to spare, the verdict column does not (the first card row must
    stay above the fold at 1400x1000). Further answer parts (e.g. one line per person) go into the
    verdict; the "Person" choice (several people: whose cards) sits above the map."""
    c = lambda key: text("controls", key)
    with gr.Row(equal_height=False, elem_id="headline"):
        with gr.Column(scale=2, min_width=280, elem_id="verdict-col"):
            ui.verdict = gr.Markdown(verdict_markdown(None, lead, ui.accuracy), elem_id="verdict")
            ui.photo_view = gr.Image(
                label=c("photo_view"), show_label=False, interactive=False, format="jpeg", height=HEADLINE_PHOTO_HEIGHT,
                elem_id="photo-view", buttons=["fullscreen"],
            )
        with gr.Column(scale=3, min_width=300, elem_id="map-col"):
            # several people: whose cards and map to show (a click on a person sets it too; picking.py). Here, not
            # under the photo: this column has room to spare; on a phone it comes right after the photo
            ui.person_pick = gr.Radio([], value=None, label=c("person_pick"), visible=False, elem_id="person-pick",
                                      elem_classes=["har-person-pick"])
            ui.best_map = gr.Image(
                label=c("best_map"), show_label=False, interactive=False, format="jpeg", height=HEADLINE_MAP_HEIGHT,
                elem_id="best-map", buttons=["download", "fullscreen"], elem_classes=["har-zoomable"],
            )
            gr.HTML(legend_html())
            ui.photo_note = gr.Markdown(msg("photo_note_empty"), elem_id="photo-note")


def _card(bank: ModelBank, name: str, acc, lead: bool) -> CardUI:
    entry = bank.get(name)
    classes = ["har-card"] + (["har-chance"] if acc is not None and acc.near_chance else []) + (["har-lead"] if lead else [])
    with gr.Column(min_width=CARD_MIN_WIDTH, visible=False, elem_classes=classes, elem_id=f"card-{name}") as column:
        header = gr.Markdown(card_header(entry, acc, lead), elem_classes=["har-card-header"])
        with gr.Row(equal_height=False, elem_classes=["har-card-body"]):
            label = gr.Label(num_top_classes=len(CLASSES), show_label=False, show_heading=False, min_width=CARD_PART_MIN_WIDTH,
                             elem_classes=["har-probs"])
            overlay = gr.Image(show_label=False, interactive=False, format="jpeg", height=CARD_MAP_HEIGHT, min_width=CARD_PART_MIN_WIDTH,
                               buttons=["download", "fullscreen"], elem_classes=["har-map", "har-zoomable"])
        method = gr.Dropdown(
            entry.methods,
            value=entry.default_method,
            label=text("controls", "method"),
            interactive=len(entry.methods) > 1,
            visible=bool(entry.methods),
            show_label=False,
            container=False,
            elem_classes=["har-method"],
        )
        info = gr.Markdown(elem_classes=["har-info"])
    return CardUI(column, header, label, overlay, method, info)


def _batch_tab(ui: UI, available: list[str]) -> None:
    c = lambda key: text("controls", key)
    with gr.Row():
        with gr.Column(scale=1, min_width=320):
            gr.Markdown(c("batch_files_info"), elem_id="batch-help")
            ui.batch_files = gr.File(label=c("batch_files"), file_count="multiple", type="filepath", elem_id="batch-files")
            ui.batch_models = gr.CheckboxGroup(available, value=available, label=c("batch_models"))
            ui.batch_run = gr.Button(c("batch_run"), variant="primary", elem_id="batch-run")
            ui.batch_status = gr.Markdown(elem_id="batch-status")
            ui.batch_csv = gr.File(label=c("batch_csv"), interactive=False, elem_id="batch-csv")
        with gr.Column(scale=2, min_width=320):  # every result stays hidden until the first batch (no empty "1 2 3" table)
            ui.batch_metrics = gr.Dataframe(label=c("batch_metrics"), headers=bt.metric_columns(), interactive=False, visible=False,
                                            wrap=True, elem_id="batch-metrics")
            ui.batch_predictions = gr.Dataframe(label=c("batch_predictions"), headers=bt.prediction_columns(), interactive=False,
                                                visible=False, max_height=360, wrap=True, elem_id="batch-predictions")
            with gr.Column(visible=False) as ui.batch_labelled:  # shown when the batch has labelled photos
                gr.Markdown(c("batch_confusion_heading"))
                ui.batch_confusion = gr.Plot(show_label=False, elem_id="batch-confusion")
                gr.Markdown(f"#### {c('batch_gallery')}")
                ui.batch_gallery = gr.Gallery(show_label=False, columns=3, height="auto", object_fit="contain", elem_id="batch-gallery")


def _private(name: str) -> dict:
    """UI-only events: not callable by API clients, and named so they never take an API name."""
    return {"api_visibility": "private", "api_name": f"ui_{name}"}


def _wire(ui: UI, cb: Callbacks, target_choices: list[str]) -> None:
    analyse_inputs = [ui.image, ui.models, ui.target, ui.opacity, ui.box, ui.skeleton, ui.mask_outline, *ui.method_inputs()]
    compare_outputs = [ui.state, ui.status, ui.corner, ui.person_pick, *ui.headline_outputs(), *ui.card_outputs()]
    # the answer first, then everyone in the photo (find_people: ~0.1 s even on a one-person photo) as a follow-up
    # that redraws only what the people change: the verdict's per-person list, the numbered photo, the "Person" choice
    people_outputs = [ui.state, ui.status, ui.verdict, ui.photo_view, ui.photo_note, ui.person_pick]  # status: a failure's one line
    # preprocess=False: the photo reaches the callback undecoded, so a bad file gets our message
    ui.run.click(cb.analyse, analyse_inputs, compare_outputs, preprocess=False, **_private("analyse"), **MODEL_WORK).then(
        cb.people, ui.view_inputs(), people_outputs, show_progress="hidden", **_private("people"), **MODEL_WORK
    )
    if ui.examples is not None:  # a click on an example analyses it (lazily cached per setting)
        ui.examples.load_input_event.then(
            cb.analyse, analyse_inputs, compare_outputs, preprocess=False, **_private("example"), **MODEL_WORK
        ).then(cb.people, ui.view_inputs(), people_outputs, show_progress="hidden", **_private("example_people"), **MODEL_WORK)
    ui.image.upload(cb.photo_uploaded, [ui.image], [ui.status], preprocess=False, **_private("upload"), **UPLOAD_CHECK)
    redraw_outputs = [ui.status, *ui.headline_outputs()] + [c for card in ui.cards.values() for c in (card.overlay, card.info)]
    for key, control in (("opacity", ui.opacity), ("skeleton", ui.skeleton), ("mask_outline", ui.mask_outline)):
        control.change(
            cb.redraw, ui.view_inputs(), redraw_outputs,
            show_progress="hidden", trigger_mode="always_last", **_private(key), **LIGHT_WORK,
        )
    ui.box.submit(cb.box_changed, ui.view_inputs(), redraw_outputs, **_private("box_submit"), **LIGHT_WORK)
    ui.box.blur(cb.box_changed, ui.view_inputs(), redraw_outputs, **_private("box_blur"), **LIGHT_WORK)
    corner_inputs = [ui.corner, *ui.view_inputs()]
    corner_outputs = [ui.corner, ui.box, *redraw_outputs]
    ui.image.select(cb.corner_clicked, corner_inputs, corner_outputs, **_private("corner"), **LIGHT_WORK)
    ui.photo_view.select(cb.view_corner_clicked, corner_inputs, [*corner_outputs, ui.person_pick], **_private("view_corner"), **LIGHT_WORK)
    ui.person_pick.change(  # several people: a click on one (above) or the choice remakes the person-centred cards
        cb.person_picked, [ui.state, ui.person_pick, ui.target, ui.opacity, ui.box, ui.skeleton, ui.mask_outline],
        [ui.state, ui.status, *ui.headline_outputs(), *ui.card_outputs()], **_private("person_pick"), **MODEL_WORK,
    )
    ui.clear_box.click(cb.clear_box, None, [ui.corner, ui.box], **_private("clear_box"), **LIGHT_WORK).then(
        cb.box_changed, ui.view_inputs(), redraw_outputs, **_private("clear_box_then"), **LIGHT_WORK
    )
    ui.target.change(
        cb.target_changed, [ui.state, ui.target, ui.opacity, ui.box, ui.skeleton, ui.mask_outline, *ui.method_inputs()],
        compare_outputs, **_private("target"), **MODEL_WORK,
    )
    for name, card in ui.cards.items():
        card.method.change(
            cb.method_changed(name), [ui.state, card.method, ui.target, ui.opacity, ui.box, ui.skeleton, ui.mask_outline],
            [ui.state, ui.status, *ui.headline_outputs(), card.column, card.label, card.overlay, card.info],
            **_private(f"method_{name}"), **MODEL_WORK,
        )
    batch_outputs = [ui.batch_metrics, ui.batch_predictions, ui.batch_labelled, ui.batch_confusion, ui.batch_gallery, ui.batch_csv, ui.batch_status]
    ui.batch_run.click(cb.batch, [ui.batch_files, ui.batch_models], batch_outputs, **_private("batch"), **MODEL_WORK)
    ui.cards_refresh.click(cb.cards, None, [ui.cards_md, ui.results_md], **_private("cards"), **LIGHT_WORK)
    ui.cards_reliability_model.change(cb.reliability, [ui.cards_reliability_model], [ui.cards_reliability, ui.cards_md], **_private("reliability"), **LIGHT_WORK)


API_EXAMPLE = "examples/standing_woods.jpg"  # relative to the repository root (where the README's commands run)
# The same photo at its source (examples/LICENSES.md): the JavaScript snippet fetches the example by URL.
API_EXAMPLE_URL = "http://images.cocodataset.org/train2017/000000442450.jpg"


def example_file(**kwargs) -> gr.File:
    """A ``gr.File`` whose "Use via API" example is a photo this repository ships (Gradio's default
    is a PDF on github.com that fails when copied; the JavaScript snippet fetches ``url``, else it
    would do ``fetch("")``). Set on the instance: a ``gr.File`` subclass
    would make Gradio write a ``.pyi`` stub next to this module."""
    comp = gr.File(**kwargs)
    item = {"path": API_EXAMPLE, "url": API_EXAMPLE_URL, "orig_name": API_EXAMPLE.rsplit("/", 1)[-1], "meta": {"_type": "gradio.FileData"}}
    single = comp.file_count == "single"
    comp.example_payload = lambda: item if single else [item]
    comp.example_value = lambda: API_EXAMPLE if single else [API_EXAMPLE]
    return comp


def _same(value):
    return value


def _api(api: Api, lead: str | None = None) -> None:
    """Hidden components + triggers for the named endpoints (the visible UI does not use them).
    Every input has a working default or example, so the "Use via API" snippets run if copied."""
    a = strings()["api"]
    with gr.Column(visible=False):
        image = example_file(label="image", type="filepath")
        files = example_file(label="files", file_count="multiple", type="filepath")
        models = gr.Textbox(label="models", value="", info="comma-separated names; empty = every available model")
        model = gr.Textbox(label="model", value=lead or "", info="one model name (see /models)")
        method = gr.Textbox(label="method", value="", info="empty = the model's default")
        target = gr.Textbox(label="target", value="predicted", info="predicted, " + ", ".join(CLASSES))
        opacity = gr.Number(label="opacity", value=DEFAULT_OPACITY, minimum=0, maximum=1)
        box = gr.Textbox(label="box", value="", info="person box x0, y0, x1, y1 in photo pixels (optional; overrides the person finder)")
        result = gr.JSON(label="result")
        overlays = gr.Gallery(label="overlays", format="jpeg")
        overlay = gr.Image(label="overlay", format="jpeg")
        csv_file = gr.File(label="predictions_csv")
        models_json = gr.JSON(label="models")
        triggers = [gr.Button(visible=False) for _ in range(4)]
    for comp in (models, model, method, target, opacity, box):  # the docs' examples = the working defaults
        comp.example_payload = comp.example_value = functools.partial(_same, comp.value)
    triggers[0].click(api.predict, [image, models, target, opacity], [result, overlays], api_name="predict",
                      api_description=a["predict"], **MODEL_WORK)
    triggers[1].click(api.explain, [image, model, method, target, opacity, box], [overlay, result], api_name="explain",
                      api_description=a["explain"], **MODEL_WORK)
    triggers[2].click(api.batch, [files, models], [result, csv_file], api_name="batch", api_description=a["batch"], **MODEL_WORK)
    triggers[3].click(api.models, None, [models_json], api_name="models", api_description=a["models"], **LIGHT_WORK)
