"""The web demo: Grad-CAM geometry, the stability verdict, readable errors, the served app over HTTP,
and the page in a real browser.

The suite itself needs no browser: `test_http_upload_shows_the_cli_scores` uploads files to the running
server through gradio's own client, the requests the page makes. The browser test (marker `browser`,
deselected by default; `python -m pytest -m browser`, which `.ci/run` also runs) drives Debian's
Chromium (/usr/bin/chromium, or $CHROMIUM_PATH) with Playwright; no browser is downloaded, and
without that binary it fails with instructions. APP_SCREENSHOT_DIR, when set, receives a copy of the
page's screenshot.
"""

from __future__ import annotations

import csv
import os
import shutil
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import gradio as gr
import numpy as np
import pytest
import torch
from conftest import load_script
from PIL import Image
from provenance_files import EMAIL_PROTECTION, encode, make_pki, picture, sign_jpeg
from tiny_model import TinyModelTester
from transformers import ConvNextForImageClassification

from modeling.app.attribution import attribution_map, grad_cam, input_box, overlay_heatmap
from modeling.app.demo import DemoPredictor, render_table, stability_verdict
from modeling.data.demo import DemoSpec, make_demo_data
from modeling.labels import AI_LABEL_ID
from modeling.predictor import Detector
from modeling.processing import IMAGENET_MEAN, IMAGENET_STD, build_image_processor

# gradio's local event statistics (queueing.py) use pandas options that pandas 3 deprecates: not ours to fix
pytestmark = [
    pytest.mark.filterwarnings("ignore:'future.no_silent_downcasting' is deprecated"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--no-proxy-server",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
TIMEOUT_MS = 90_000  # generous: CI shares 2 cores with other jobs


def tiny_convnext(seed: int = 0) -> ConvNextForImageClassification:
    """A random tiny ConvNext whose head is scaled up so that scores spread over (0, 1)."""
    return TinyModelTester.model(seed, head_scale=30.0, layer_scale_init_value=1.0)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A saved tiny detector (crop processor at 64 px, threshold 0.5), as training would write it."""
    folder = tmp_path_factory.mktemp("app_model")
    model = tiny_convnext()
    model.config.decision_threshold = 0.5
    model.save_pretrained(folder)
    build_image_processor("crop", image_size=64).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def demo_images(tmp_path_factory) -> dict[str, list[Path]]:
    """Demo-data JPEGs by source kind: {"real": [...], "ai": [...]}."""
    root = tmp_path_factory.mktemp("app_data")
    make_demo_data(root, DemoSpec(images_per_source=2))
    real = sorted((root / "scenes").rglob("*.jpg")) + sorted((root / "textures").rglob("*.jpg"))
    ai = sorted((root / "upconv_gan").rglob("*.jpg")) + sorted((root / "latent_decoder").rglob("*.jpg"))
    assert real and ai
    return {"real": real, "ai": ai}


def pattern_image(width: int, height: int, seed: int) -> Image.Image:
    """Blocky random colours: large enough features that a resize keeps them recognisable."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (height // 4 + 1, width // 4 + 1, 3))
    return Image.fromarray(np.kron(blocks, np.ones((4, 4, 1)))[:height, :width].astype(np.uint8))


# --------------------------------------------------------------------------- attribution


@pytest.mark.parametrize("kind", ["crop", "resize"])
@pytest.mark.parametrize("size", [(200, 200), (101, 77), (40, 90), (33, 33), (300, 150)])
def test_input_box_is_what_the_processor_shows_the_model(kind, size):
    """The box the heat map is drawn on holds exactly the pixels the processor hands to the model."""
    processor = build_image_processor(kind, image_size=64)
    image = pattern_image(*size, seed=size[0])
    pixels = processor(image, return_tensors="pt")["pixel_values"][0].numpy()  # (3, 64, 64)
    mean, std = np.array(IMAGENET_MEAN)[:, None, None], np.array(IMAGENET_STD)[:, None, None]
    seen = ((pixels * std + mean) * 255).transpose(1, 2, 0)
    box = input_box(processor, *size)
    left, top, right, bottom = (int(round(v)) for v in (box.left, box.top, box.right, box.bottom))
    padded = np.zeros((bottom - top, right - left, 3), dtype=np.uint8)  # zero where the processor pads
    x0, y0, x1, y1 = max(left, 0), max(top, 0), min(right, size[0]), min(bottom, size[1])
    padded[y0 - top : y1 - top, x0 - left : x1 - left] = np.asarray(image)[y0:y1, x0:x1]
    expected = np.asarray(Image.fromarray(padded).resize((64, 64), Image.Resampling.BICUBIC), dtype=np.float64)
    tolerance = 0.5 if kind == "crop" else 4.0  # crop: the same pixels; resize: rounding of the box edges
    assert np.abs(seen - expected).mean() < tolerance


def test_attribution_map_has_the_image_shape_and_follows_the_input():
    model = tiny_convnext()
    processor = build_image_processor("crop", image_size=64)
    maps = {}
    for name, image in {"a": pattern_image(120, 90, 1), "b": pattern_image(120, 90, 2)}.items():
        heat = attribution_map(model, processor, image, target=AI_LABEL_ID)
        assert heat.shape == (90, 120) and heat.dtype == np.float32
        assert np.isfinite(heat).all() and heat.min() >= 0.0 and heat.max() == pytest.approx(1.0)
        box = input_box(processor, 120, 90)  # the model sees the centre 64x64: nothing is drawn outside it
        inside = np.zeros_like(heat, dtype=bool)
        inside[int(box.top) : int(box.bottom), int(box.left) : int(box.right)] = True
        assert heat[~inside].max() == 0.0
        maps[name] = heat
    assert np.abs(maps["a"] - maps["b"]).max() > 0.1  # a different image gives a different map

    thumb = attribution_map(model, processor, pattern_image(120, 90, 1), out_size=(60, 45))
    assert thumb.shape == (45, 60)
    overlay = overlay_heatmap(Image.new("RGB", (60, 45)), thumb)
    assert overlay.size == (60, 45)


def test_grad_cam_targets_are_complementary():
    """With two labels the "real" log-odds is minus the "ai" one: where one map is hot the other is cold."""
    model = tiny_convnext()
    pixels = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    layer = model.convnext.encoder.stages[-1]
    captured = []
    handle = layer.register_forward_hook(lambda _m, _i, out: captured.append(out.shape))
    ai, real = grad_cam(model, pixels, target=1), grad_cam(model, pixels, target=0)
    handle.remove()
    assert ai.shape == real.shape == (2, 64, 64) and captured[0][-2:] == (2, 2)
    assert np.abs(ai - real).max() > 0.5
    assert not np.isnan(ai).any() and not np.isnan(real).any()


# --------------------------------------------------------------------------- verdict and errors


def test_stability_verdict_rules():
    stable = stability_verdict({"original": "ai", "jpeg75": "ai", "half": "ai"},
                               {"original": 0.9, "jpeg75": 0.85, "half": 0.95}, threshold=0.5, margin=0.1)
    assert stable[0] == "ai"
    flip = stability_verdict({"original": "ai", "jpeg75": "ai", "half": "real"},
                             {"original": 0.9, "jpeg75": 0.85, "half": 0.2}, threshold=0.5, margin=0.1)
    assert flip[0] == "uncertain" and "downscale" in flip[1]
    near = stability_verdict({"original": "real", "jpeg75": "real", "half": "real"},
                             {"original": 0.1, "jpeg75": 0.65, "half": 0.2}, threshold=0.7, margin=0.4)
    assert near[0] == "uncertain" and "0.65" in near[1]
    assert stability_verdict({"original": "real", "jpeg75": "real", "half": "real"},
                             {"original": 0.1, "jpeg75": 0.59, "half": 0.2}, threshold=0.7, margin=0.4)[0] == "real"
    # log-odds, not probability: with a threshold of 0.02 a plain real photo at 0.004 is clear of it (odds 5x
    # apart), where 0.10 of probability would have called it uncertain
    clear = stability_verdict({"original": "real", "jpeg75": "real", "half": "real"},
                              {"original": 0.004, "jpeg75": 0.003, "half": 0.005}, threshold=0.02, margin=1.0)
    assert clear[0] == "real"
    close = stability_verdict({"original": "real", "jpeg75": "real", "half": "real"},
                              {"original": 0.004, "jpeg75": 0.015, "half": 0.005}, threshold=0.02, margin=1.0)
    assert close[0] == "uncertain"


def test_analyze_scores_like_the_cli_and_explains_bad_files(tiny_model, demo_images, tmp_path):
    predictor = DemoPredictor.from_pretrained(tiny_model)
    good = demo_images["ai"][0]
    report = predictor.analyze(good)
    (row,) = Detector.from_pretrained(tiny_model, num_workers=0).predict([good])
    assert report.error is None and report.label == row.label
    assert report.score == pytest.approx(row.score_ai, abs=1e-6)
    assert set(report.scores) == {"original", "jpeg75", "half"} and report.verdict in ("ai", "real", "uncertain")
    assert report.overlay is not None and report.overlay.size == Image.open(good).size

    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(good.read_bytes()[:300])
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "empty.png").write_bytes(b"")
    reports = predictor.analyze_files([tmp_path / "notes.txt", tmp_path / "empty.png", truncated])
    for bad in reports:
        assert bad.error and bad.error.startswith(bad.name) and "Traceback" not in bad.error
        assert bad.label is None and bad.score is None
    page = render_table(reports, predictor.threshold, predictor.margin)
    assert page.count("result-row error") == 3 and "notes.txt" in page


# --------------------------------------------------------------------------- the served page


def _no_proxy_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # localhost must not go via a proxy
    with opener.open(url, timeout=timeout) as response:
        return response.status, response.read().decode("utf-8", "replace")


@pytest.fixture(scope="module")
def server(tiny_model):
    """`scripts/app.py --model M --port 0` in this process, its final blocking wait turned into a return."""
    served: list[gr.Blocks] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gr.Blocks, "block_thread", lambda self: served.append(self))
        assert load_script("app").main(["--model", str(tiny_model), "--port", "0"]) == 0
    (app,) = served
    try:
        yield app.local_url
    finally:
        app.close()


def test_app_starts_on_a_free_local_port(server):
    parsed = urlparse(server)
    assert parsed.hostname == "127.0.0.1" and parsed.port
    status, body = _no_proxy_get(server)
    assert status == 200 and "gradio" in body.lower()
    status, config = _no_proxy_get(server + "config")
    assert status == 200 and "Real or AI-generated?" in config


def test_cli_refuses_a_missing_model_and_bad_flags(tmp_path):
    app_script = load_script("app")
    assert app_script.main(["--model", str(tmp_path / "missing"), "--port", "0"]) == 2
    with pytest.raises(SystemExit):
        app_script.main(["--model", str(tmp_path), "--share", "maybe"])


def _chromium():
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"no Chromium at {CHROMIUM}: the demo's browser test cannot run. Install it "
            "(Debian: apt-get install -y chromium) or set CHROMIUM_PATH."
        )
    from playwright.sync_api import sync_playwright

    return sync_playwright


def _cli_rows(paths: list[Path], model: Path, out: Path) -> dict[str, dict[str, str]]:
    assert load_script("predict").main(["--model", str(model), *map(str, paths), "--output", str(out),
                                        "--no_progress"]) == 0
    with open(out, newline="") as stream:
        return {Path(row["path"]).name: row for row in csv.DictReader(stream)}


def _uploads(demo_images: dict[str, list[Path]], folder: Path) -> tuple[list[Path], Path]:
    """A real and an AI demo image under telling names, and a broken file."""
    folder.mkdir()
    files = [Path(shutil.copy(demo_images["real"][0], folder / "real_scene.jpg")),
             Path(shutil.copy(demo_images["ai"][0], folder / "ai_upconv.jpg"))]
    broken = folder / "broken.jpg"
    broken.write_bytes(b"this is not a JPEG")
    return files, broken


def test_http_upload_shows_the_cli_scores(server, tiny_model, demo_images, tmp_path):
    """The served app, through the endpoint the page calls on upload: it must agree with predict.py."""
    from gradio_client import Client, handle_file

    files, broken = _uploads(demo_images, tmp_path / "upload")
    cli = _cli_rows(files, tiny_model, tmp_path / "cli.csv")
    with pytest.MonkeyPatch.context() as patch:
        for proxy in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
            patch.delenv(proxy, raising=False)  # localhost must not go via a proxy
        client = Client(server, verbose=False, download_files=False)
        table, gallery = client.predict([handle_file(str(f)) for f in [*files, broken]], api_name="/analyze")
    for name in ("real_scene.jpg", "ai_upconv.jpg"):
        row = table.split(f"data-file='{name}'", 1)[1].split("</tr>", 1)[0]
        label = row.split("data-label='", 1)[1].split("'", 1)[0]
        score = float(row.split("data-score='", 1)[1].split("'", 1)[0])
        assert label == cli[name]["label"] and score == pytest.approx(float(cli[name]["score_ai"]), abs=1e-6)
    error_row = table.split("data-file='broken.jpg'", 1)[1].split("</tr>", 1)[0]
    assert "result-row error" in table and "broken.jpg: cannot decode" in error_row
    assert len(gallery) == 2  # a heat map per readable image


@pytest.mark.browser
def test_browser_upload_shows_the_cli_scores(server, tiny_model, demo_images, tmp_path):
    """Upload a real and an AI demo image, a C2PA-signed AI image and a broken file in Chromium; the page must
    agree with predict.py, scores and provenance alike, and show the signed file's state beside its verdict."""
    sync_playwright = _chromium()
    pytest.importorskip("c2pa")
    files, broken = _uploads(demo_images, tmp_path / "upload")
    signed = tmp_path / "upload" / "signed_ai.jpg"
    signed.write_bytes(sign_jpeg(encode(picture(1), quality=92), make_pki(EMAIL_PROTECTION)))
    files.append(signed)
    cli = _cli_rows(files, tiny_model, tmp_path / "cli.csv")

    requests: list[str] = []
    shown: dict[str, tuple[str, str]] = {}
    screenshot = tmp_path / "app_page.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=TIMEOUT_MS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            page.on("request", lambda request: requests.append(request.url))
            page.goto(server, wait_until="load")
            page.locator("#upload input[type=file]").set_input_files([*map(str, files), str(broken)])
            rows = page.locator("#results tr.result-row")
            rows.nth(3).wait_for(state="visible")  # four rows: three images and the broken file
            page.locator("#heatmaps img").nth(2).wait_for(state="visible")
            for name in ("real_scene.jpg", "ai_upconv.jpg", "signed_ai.jpg"):
                row = page.locator(f"#results tr.result-row[data-file='{name}']")
                shown[name] = (row.locator("td.label").inner_text().strip(), row.locator("td.score").inner_text(),
                               row.locator("td.provenance").inner_text(), row.locator("td.reading").inner_text())
            error_text = page.locator("#results tr.result-row.error td.message").inner_text()
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    if os.environ.get("APP_SCREENSHOT_DIR"):
        target = Path(os.environ["APP_SCREENSHOT_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, target / "app_page.png")
    print(f"\nscreenshot: {screenshot}\npage: {shown}\ncli: {cli}")

    for name, (label, score, provenance, _) in shown.items():
        assert label == cli[name]["label"], (name, shown, cli)
        assert float(score) == pytest.approx(float(cli[name]["score_ai"]), abs=6e-5), (name, shown, cli)
        assert provenance.startswith(f"C2PA: {cli[name]['provenance_c2pa_state']}"), (name, shown, cli)
    _, _, signed_cell, signed_reading = shown["signed_ai.jpg"]
    assert "valid, untrusted signer" in signed_cell
    assert "made by a generative AI (trainedAlgorithmicMedia)" in signed_cell
    assert signed_reading.startswith("Intact credentials from a signer not on the trust list")
    _, _, plain_cell, plain_reading = shown["real_scene.jpg"]
    assert "none found" in plain_cell and "real" not in plain_cell.lower()  # absence never reads as real
    assert "No claim either way" in plain_reading
    assert error_text.startswith("broken.jpg") and "cannot decode" in error_text
    assert Image.open(screenshot).size[0] == 1280
    outside = {urlparse(u).netloc for u in requests if urlparse(u).scheme in ("http", "https")}
    assert outside == {urlparse(server).netloc}, f"the page fetched from elsewhere: {outside}"
