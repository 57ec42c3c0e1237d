"""The web demo: drop images, see the label, the calibrated score, where the evidence is, and whether it holds.

    from modeling.app.demo import build_app, launch
    launch(build_app("outputs/demo"), port=7860)            # or: python scripts/app.py --model outputs/demo

Per image the page shows:
- the label and P(ai) from `Detector`, the predictor `scripts/predict.py` uses (same decoding, same
  saved processor, same backend choice, the model's calibrated `decision_threshold`), so the page
  and the CLI agree on every file;
- a Grad-CAM heat map of the evidence for that label on the last ConvNeXt stage
  (`modeling.attribution`), drawn on the part of the image the model actually sees;
- a stability check: P(ai) again after a JPEG re-save at quality 75 and after a 0.5 downscale. The
  verdict is "uncertain" when any of the three labels differ, or when any of the three scores lies
  within `margin` log-odds (default 1: odds within e-fold) of the threshold's; otherwise it is the label;
- beside the verdict, never in it: what the file claims about its origin (`modeling.provenance`: the
  C2PA state and the one-line summary) and one short line that says how far that claim goes. "none
  found" is shown as the absence of a claim, never as a sign that the image is real.
Any binary image classifier can be served (`ai_label`, as in predict.py); Grad-CAM is drawn for ConvNeXt
models only (the heat-map gallery stays empty for others).
Files that cannot be read get a one-line message in the table, never a stack trace.

The app makes no network calls of its own: analytics are off, nothing is downloaded, and `launch`
binds 127.0.0.1 without a share link unless asked.
"""

from __future__ import annotations

import html
import logging
import math
import os
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no telemetry

import gradio as gr  # noqa: E402
from PIL import Image  # noqa: E402
from transformers import AutoModelForImageClassification  # noqa: E402

from modeling.app.attribution import attribution_map, overlay_heatmap, view_box  # noqa: E402
from modeling.degradations import downscale, reencode  # noqa: E402
from modeling.images import ImageLoadError, load_image  # noqa: E402
from modeling.inference.predictor import Detector  # noqa: E402
from modeling.inference.runners import TorchRunner  # noqa: E402
from modeling.provenance import Provenance  # noqa: E402
from modeling.provenance.credentials import INVALID, NONE_FOUND, REMOTE, TRUSTED, VALID_UNTRUSTED  # noqa: E402
from modeling.provenance.report import describe_source_type  # noqa: E402

logger = logging.getLogger(__name__)

UNCERTAIN_MARGIN = 1.0  # log-odds: a score whose odds are within e-fold of the threshold's is not a verdict
JPEG_QUALITY = 75
DOWNSCALE = 0.5
MAX_FILES = 16  # per request: the CPU of a free Space scores a few images a second
DISPLAY_SIDE = 512  # heat-map overlays are drawn on a copy at most this long (the model sees the original)
VARIANTS = ("original", f"jpeg{JPEG_QUALITY}", "half")


@dataclass
class ImageReport:
    """What the page shows for one file: scores and verdict, or the reason there are none."""

    name: str
    label: str | None = None
    scores: dict[str, float | None] = field(default_factory=dict)  # variant -> P(ai)
    labels: dict[str, str | None] = field(default_factory=dict)
    verdict: str | None = None
    reason: str = ""
    overlay: Image.Image | None = None
    error: str | None = None
    provenance: Provenance | None = None  # what the file claims about its origin; never part of the verdict

    @property
    def score(self) -> float | None:
        return self.scores.get("original")


def interpretation(provenance: Provenance | None) -> str:
    """One short line on how far the file's own claim about its origin goes, next to the pixel verdict."""
    if provenance is None:
        return "Provenance was not read."
    state = provenance.c2pa_state
    claim = describe_source_type(provenance.source_type)
    if state == TRUSTED:
        return f"A trusted signer states: {claim}. That is stronger evidence than the pixel score."
    if state == VALID_UNTRUSTED:
        return f"Intact credentials from a signer not on the trust list: {claim}; only as good as that signer."
    if state == INVALID:
        return "The credentials fail validation (changed after signing): rely on neither them nor their claim."
    if state == REMOTE:
        return "Credentials are kept online and were not fetched: check them with a C2PA verifier."
    if provenance.claims:
        return "Only unsigned metadata, which anyone can write or strip: a hint, not proof."
    if state.startswith("error"):
        return "Provenance could not be read; the pixel verdict stands alone."
    return "No claim either way: most files lose their metadata on any re-save. The pixel verdict stands alone."


def log_odds(p: float) -> float:
    """log(p / (1 - p)), clipped away from 0 and 1: the scale on which "close to the threshold" is judged, so that
    the margin means the same for a threshold of 0.02 and of 0.5."""
    p = min(max(p, 1e-9), 1 - 1e-9)
    return math.log(p / (1 - p))


def stability_verdict(
    labels: dict[str, str | None], scores: dict[str, float | None], threshold: float, margin: float
) -> tuple[str, str]:
    """(verdict, why): the label when all variants agree and sit clear of the threshold, else "uncertain"."""
    original = labels["original"]
    flips = [name for name, label in labels.items() if label is not None and label != original]
    if flips:
        return "uncertain", "label flips after " + " and ".join(_describe_variant(v) for v in flips)
    near = [name for name, score in scores.items() if score is not None and abs(log_odds(score) - log_odds(threshold))
            < margin]
    if near:
        where = ", ".join(f"{scores[v]:.3g} ({_describe_variant(v)})" for v in near)
        return "uncertain", f"P(ai) within {margin:g} log-odds of the threshold {threshold:.3g}: {where}"
    return str(original), "stable under JPEG 75 and 0.5 downscale"


def _describe_variant(name: str) -> str:
    return {"original": "the original", "half": "0.5 downscale"}.get(name, f"JPEG {JPEG_QUALITY}")


class DemoPredictor:
    """The CLI's `Detector` for scores, plus a PyTorch copy of the model for Grad-CAM."""

    def __init__(self, detector: Detector, margin: float = UNCERTAIN_MARGIN):
        if not 0.0 <= margin <= 10.0:
            raise ValueError(f"margin must be a log-odds distance in [0, 10], got {margin}")
        self.detector = detector
        self.margin = margin
        self._cam_model: Any = None
        self._lock = threading.Lock()  # Grad-CAM hooks the shared model: one request at a time

    @classmethod
    def from_pretrained(
        cls, model: str | os.PathLike, backend: str = "auto", threshold: float | None = None,
        margin: float = UNCERTAIN_MARGIN, ai_label: str | None = None, trust_anchors: str | os.PathLike | None = None,
    ) -> DemoPredictor:
        """Load exactly as `scripts/predict.py` does (raises `ModelLoadError` with a readable message)."""
        detector = Detector.from_pretrained(model, backend=backend, threshold=threshold, num_workers=0,
                                            ai_label=ai_label, trust_anchors=trust_anchors)
        return cls(detector, margin)

    @property
    def threshold(self) -> float:
        return self.detector.threshold

    def cam_model(self) -> Any:
        """The torch model for gradients: the runner's own when it is torch, else loaded once in fp32."""
        if self._cam_model is None:
            runner = self.detector.runner
            if isinstance(runner, TorchRunner):
                self._cam_model = runner.model
            else:
                self._cam_model = AutoModelForImageClassification.from_pretrained(
                    str(self.detector.model_dir), use_safetensors=True
                ).eval()
        return self._cam_model

    def analyze(self, path: str | Path, name: str | None = None) -> ImageReport:
        """Score one file, its two re-encodings, and draw the evidence; errors end up in `.error`."""
        name = name or Path(path).name
        with self._lock:
            try:
                return self._analyze(str(path), name)
            except Exception as err:  # noqa: BLE001 - the page shows a message, the log keeps the trace
                logger.exception("analysis of %s failed", name)
                return ImageReport(name, error=f"{name}: could not be analysed ({type(err).__name__}: {err})")

    def _analyze(self, path: str, name: str) -> ImageReport:
        (row,) = self.detector.predict_images([path])  # load_image + saved processor + runner, as predict.py
        if row.error is not None:
            return ImageReport(name, error=row.error.replace(path, name), provenance=row.provenance)
        try:
            image = load_image(path)
        except ImageLoadError as err:
            return ImageReport(name, error=str(err).replace(path, name))
        variants = self.detector.predict_images([reencode(image, "JPEG", JPEG_QUALITY), downscale(image, DOWNSCALE)])
        rows = {"original": row, VARIANTS[1]: variants[0], VARIANTS[2]: variants[1]}
        report = ImageReport(
            name,
            label=row.label,
            scores={k: r.score_ai for k, r in rows.items()},
            labels={k: r.label for k, r in rows.items()},
            provenance=row.provenance,
        )
        report.verdict, report.reason = stability_verdict(report.labels, report.scores, self.threshold, self.margin)
        report.overlay = self.heatmap(image, row.label)
        return report

    def heatmap(self, image: Image.Image, label: str | None) -> Image.Image | None:
        """Grad-CAM for `label` over a display-sized copy of the image; None for a model that is not a ConvNeXt
        (the map is taken on the last ConvNeXt stage)."""
        if not hasattr(self.cam_model(), "convnext"):
            return None
        labels = self.detector.labels
        target = labels.real_id if label == "real" else labels.ai_id
        display = image.copy()
        display.thumbnail((DISPLAY_SIDE, DISPLAY_SIDE))
        processor = self.detector.processor
        heat = attribution_map(self.cam_model(), processor, image, target, out_size=display.size)
        return overlay_heatmap(display, heat, box=view_box(processor, image.size, display.size))

    def analyze_files(self, paths: Sequence[str | Path] | None) -> list[ImageReport]:
        """Reports for up to MAX_FILES uploads; the rest get a message saying they were skipped."""
        paths = list(paths or [])
        reports = [self.analyze(p) for p in paths[:MAX_FILES]]
        reports += [ImageReport(Path(p).name, error=f"skipped: at most {MAX_FILES} images at a time") for p in
                    paths[MAX_FILES:]]
        return reports


# --------------------------------------------------------------------------- page


TABLE_CSS = """
table { border-collapse: collapse; width: 100%; font-size: 0.95em; }
th, td { padding: 4px 8px; border-bottom: 1px solid #ccc; text-align: left; }
td.verdict-ai, td.verdict-real { font-weight: bold; }
td.verdict-uncertain { font-weight: bold; color: #b26b00; }
tr.error td { color: #b00020; }
td.provenance .state { font-weight: bold; }
td.provenance small { display: block; color: #555; }
td.provenance-invalid .state { color: #b00020; }
td.provenance-none .state, td.provenance-other .state { color: #666; font-weight: normal; }
"""
_STATE_CLASSES = {
    TRUSTED: "trusted", VALID_UNTRUSTED: "valid", INVALID: "invalid", REMOTE: "remote", NONE_FOUND: "none",
}


def _score_text(score: float | None) -> str:
    return "n/a" if score is None else f"{score:.4f}"


def provenance_cells(report: ImageReport) -> str:
    """The provenance cell (C2PA state, then the one-line summary) and the interpretation cell of one row."""
    esc = html.escape
    provenance = report.provenance
    if provenance is None:
        reading = esc(interpretation(None))
        return f"<td class='provenance provenance-other'>not read</td><td class='reading'>{reading}</td>"
    kind = _STATE_CLASSES.get(provenance.c2pa_state, "other")
    return (
        f"<td class='provenance provenance-{kind}' data-c2pa-state='{esc(provenance.c2pa_state)}'>"
        f"<span class='state'>C2PA: {esc(provenance.c2pa_state)}</span><small>{esc(provenance.summary)}</small></td>"
        f"<td class='reading'>{esc(interpretation(provenance))}</td>"
    )


def render_table(reports: Sequence[ImageReport], threshold: float, margin: float) -> str:
    """The results table; rows carry data-* attributes so tests (and scripts) can read them back."""
    if not reports:
        return "<p class='empty'>No images yet: drop one or several above.</p>"
    esc = html.escape
    head = (
        "<tr><th>file</th><th>label</th><th>P(ai)</th><th>after JPEG 75</th><th>after 0.5 downscale</th>"
        "<th>verdict</th><th>why</th><th>provenance (what the file claims)</th><th>reading</th></tr>"
    )
    rows = []
    for r in reports:
        if r.error is not None:
            rows.append(
                f"<tr class='result-row error' data-file='{esc(r.name)}'><td>{esc(r.name)}</td>"
                f"<td class='message' colspan='8'>{esc(r.error)}</td></tr>"
            )
            continue
        cells = "".join(f"<td class='score-{v}'>{_score_text(r.scores.get(v))}</td>" for v in VARIANTS[1:])
        rows.append(
            f"<tr class='result-row' data-file='{esc(r.name)}' data-label='{esc(str(r.label))}' "
            f"data-score='{r.score!r}' data-verdict='{esc(str(r.verdict))}'>"
            f"<td>{esc(r.name)}</td><td class='label'>{esc(str(r.label))}</td>"
            f"<td class='score'>{_score_text(r.score)}</td>{cells}"
            f"<td class='verdict verdict-{esc(str(r.verdict))}'>{esc(str(r.verdict))}</td><td>{esc(r.reason)}</td>"
            f"{provenance_cells(r)}</tr>"
        )
    note = (
        f"<p>Label: P(ai) &ge; {threshold:.3g} means ai. Verdict: uncertain when the label flips after "
        f"JPEG {JPEG_QUALITY} or a 0.5 downscale, or when a score is within {margin:g} log-odds of the threshold. "
        "Provenance is what the file itself claims (C2PA Content Credentials, XMP, generator metadata), shown "
        "beside the verdict and never used by it; 'none found' is no evidence that an image is real.</p>"
    )
    return f"<table id='result-table'>{head}{''.join(rows)}</table>{note}"


def gallery_items(reports: Sequence[ImageReport]) -> list[tuple[Image.Image, str]]:
    return [(r.overlay, f"{r.name}: {r.label} ({_score_text(r.score)})") for r in reports if r.overlay is not None]


def _intro(predictor: DemoPredictor) -> str:
    detector = predictor.detector
    return (
        "# Real or AI-generated?\n"
        "Drop one or several images. Each gets a label and P(ai) (calibrated), a Grad-CAM heat map of "
        "where the evidence for that label is (last ConvNeXt stage; only the part of the image the model "
        "sees is coloured), and the score again after a JPEG re-save at quality 75 and a 0.5 downscale. "
        f"The verdict is *uncertain* when the label flips or a score is within {predictor.margin:g} log-odds "
        "of the threshold. Beside it: what the file itself claims about its origin (C2PA Content Credentials, "
        "XMP, generator metadata), which never changes the verdict; *none found* is no evidence of a real photo."
        f"\n\nModel: `{detector.model_dir}` · backend {detector.backend_name} · "
        f"threshold {detector.threshold:.3g}"
        + ("" if detector.labels.is_own else f" · labels: {detector.labels.describe()}")
    )


def build_app(
    model: str | os.PathLike | DemoPredictor, backend: str = "auto", threshold: float | None = None,
    margin: float = UNCERTAIN_MARGIN, ai_label: str | None = None, trust_anchors: str | os.PathLike | None = None,
) -> gr.Blocks:
    """The Gradio Blocks page for a model folder or Hub repo (or a ready `DemoPredictor`)."""
    predictor = (
        model if isinstance(model, DemoPredictor)
        else DemoPredictor.from_pretrained(model, backend=backend, threshold=threshold, margin=margin,
                                           ai_label=ai_label, trust_anchors=trust_anchors)
    )

    def analyze(paths: list[str] | None) -> tuple[str, list[tuple[Image.Image, str]]]:
        reports = predictor.analyze_files(paths)
        return render_table(reports, predictor.threshold, predictor.margin), gallery_items(reports)

    def clear() -> tuple[str, list]:
        return render_table([], predictor.threshold, predictor.margin), []

    # delete_cache: uploads older than an hour are removed every hour (a Space runs for weeks)
    with gr.Blocks(title="AI-generated image detector", analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        gr.Markdown(_intro(predictor))
        with gr.Row():
            files = gr.File(label="Images", file_count="multiple", elem_id="upload", scale=3)
            button = gr.Button("Analyze", variant="primary", elem_id="analyze", scale=1)
        results = gr.HTML(
            render_table([], predictor.threshold, predictor.margin), elem_id="results", css_template=TABLE_CSS,
            js_on_load=None,
        )
        gallery = gr.Gallery(
            label="Grad-CAM: evidence for the label", elem_id="heatmaps", format="png", columns=3,
            interactive=False,
        )
        files.upload(analyze, inputs=files, outputs=[results, gallery])
        button.click(analyze, inputs=files, outputs=[results, gallery])
        files.clear(clear, outputs=[results, gallery])
    app.predictor = predictor  # for callers that want the scores without the page
    return app


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def launch(
    app: gr.Blocks, port: int | None = None, host: str = "127.0.0.1", share: bool = False, block: bool = True,
) -> str:
    """Serve the page on host:port (a free port when None); returns the local URL.

    block=False returns at once with the server running in a thread (tests; call `app.close()`).
    """
    app.queue(default_concurrency_limit=1)  # one analysis at a time: the CPU is the bottleneck
    _, url, _ = app.launch(
        server_name=host, server_port=port or free_port(host), share=share, prevent_thread_lock=True,
        quiet=True, show_error=False, footer_links=[], max_file_size="50mb",
    )
    logger.info("serving on %s", url)
    if block:
        app.block_thread()
    return url
