"""Batch prediction: every odd input gets a row with a clear error or the right score, output formats,
the threshold, backend choice, and the CLI's exit codes. Tiny random ConvNext (64 px crop), offline."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import load_script
from PIL import Image, ImageFile
from tiny_model import TinyModelTester
from transformers import AutoModelForImageClassification, ConvNextForImageClassification, pipeline

from modeling.inference.images import ImageFiles
from modeling.inference.predictor import Detector, ModelLoadError, PredictionRow
from modeling.inference.runners import BF16_TOLERANCE
from modeling.metrics import ai_scores
from modeling.processing import build_image_processor

CROP = 64


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """Random init with layer scale 1.0, so that different pixels give different scores."""
    return TinyModelTester.save(tmp_path_factory.mktemp("tiny_model"), image_size=CROP, layer_scale_init_value=1.0)


@pytest.fixture(scope="session")
def reference(tiny_model):
    """P(ai) straight from the model and the saved processor, for an already-decoded PIL image."""
    model = ConvNextForImageClassification.from_pretrained(tiny_model).eval()
    processor = build_image_processor("crop", image_size=CROP)

    def score(image: Image.Image) -> float:
        with torch.inference_mode():
            logits = model(pixel_values=processor(image, return_tensors="pt")["pixel_values"]).logits
        return float(ai_scores(logits.numpy())[0])

    return score


def photo(width: int, height: int, seed: int) -> np.ndarray:
    """Smooth colours plus noise, asymmetric, so rotations and frames give different pixels."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (height // 8 + 2, width // 8 + 2, 3), dtype=np.uint8))
    smooth = np.asarray(coarse.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)
    return np.clip(smooth + rng.normal(0, 10, smooth.shape), 0, 255).astype(np.uint8)


def jpeg_bytes(pixels: np.ndarray, **kwargs) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=92, **kwargs)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def odd_inputs(tmp_path_factory) -> tuple[Path, dict[str, Image.Image | None]]:
    """name -> the image a correct decoder must score (None: must be an error row), files on disk."""
    folder = tmp_path_factory.mktemp("odd")
    base = photo(96, 80, 1)
    good = jpeg_bytes(base)
    expected: dict[str, Image.Image | None] = {}

    (folder / "good.jpg").write_bytes(good)
    expected["good.jpg"] = Image.open(io.BytesIO(good)).convert("RGB")
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 2])
    header = bytearray(good)
    header[2:40] = bytes(38)  # the JPEG markers after SOI zeroed: unidentifiable
    (folder / "corrupt_header.jpg").write_bytes(bytes(header))
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("this is not an image\n")
    expected.update({name: None for name in ("truncated.jpg", "corrupt_header.jpg", "zero.jpg", "text.jpg")})
    # Damaged entropy-coded data: libjpeg either fails (an error row) or recovers and Pillow decodes the
    # damaged picture without a warning, which training and pipeline() then see too: that is the score.
    for seed in (2, 3):
        scan = bytearray(good)
        scan[len(good) // 2 : len(good) // 2 + 200] = np.random.default_rng(seed).bytes(200)
        (folder / f"corrupt_scan{seed}.jpg").write_bytes(bytes(scan))
        try:
            expected[f"corrupt_scan{seed}.jpg"] = Image.open(io.BytesIO(bytes(scan))).convert("RGB")
        except OSError:
            expected[f"corrupt_scan{seed}.jpg"] = None

    rgba = np.dstack([photo(70, 90, 3), np.linspace(0, 255, 70 * 90).reshape(90, 70).astype(np.uint8)])
    Image.fromarray(rgba, "RGBA").save(folder / "alpha.png")
    expected["alpha.png"] = Image.fromarray(rgba[..., :3])  # pipeline's convert("RGB") drops alpha

    palette = Image.fromarray(photo(80, 80, 4)).quantize(64)
    palette.save(folder / "palette.png")
    expected["palette.png"] = palette.convert("RGB")

    gray8 = photo(80, 72, 5)[..., 0]
    Image.fromarray(gray8.astype(np.uint16) * 257).save(folder / "gray16.png")  # 16-bit, same picture
    expected["gray16.png"] = Image.fromarray(np.dstack([gray8] * 3))
    dark16 = (gray8 // 2).astype(np.uint16)  # values <= 127 of 65535: nearly black, must stay so
    Image.fromarray(dark16).save(folder / "dark16.png")
    expected["dark16.png"] = Image.new("RGB", (80, 72), (0, 0, 0))
    Image.fromarray(gray8).save(folder / "gray.png")
    expected["gray.png"] = Image.fromarray(np.dstack([gray8] * 3))

    cmyk = Image.fromarray(photo(88, 88, 6)).convert("CMYK")
    cmyk.save(folder / "cmyk.jpg", quality=95)
    expected["cmyk.jpg"] = Image.open(folder / "cmyk.jpg").convert("RGB")

    frames = [Image.fromarray(photo(72, 72, seed)) for seed in (7, 8)]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    expected["anim.gif"] = Image.open(folder / "anim.gif").convert("RGB")  # frame 0 as GIF stores it
    frames[0].save(folder / "anim.webp", save_all=True, append_images=frames[1:], lossless=True)
    expected["anim.webp"] = frames[0]

    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: the stored pixels must be turned 90 degrees clockwise to display
    stored = jpeg_bytes(photo(96, 64, 9), exif=exif.tobytes())
    (folder / "exif_rotated.jpg").write_bytes(stored)
    expected["exif_rotated.jpg"] = Image.open(io.BytesIO(stored)).convert("RGB").transpose(Image.Transpose.ROTATE_270)

    Image.fromarray(photo(30, 20, 10)).save(folder / "small.png")
    expected["small.png"] = Image.fromarray(photo(30, 20, 10))
    return folder, expected


def score_by_name(rows: list[PredictionRow]) -> dict[str, PredictionRow]:
    return {Path(row.path).name: row for row in rows}


@pytest.mark.parametrize("num_workers", [0, 1])
def test_every_odd_input_gets_a_correct_row(tiny_model, odd_inputs, reference, num_workers):
    folder, expected = odd_inputs
    detector = Detector.from_pretrained(tiny_model, backend="torch", precision="fp32", num_workers=num_workers)
    rows = score_by_name(list(detector.predict([folder])))
    assert set(rows) == set(expected)
    for name, image in expected.items():
        row = rows[name]
        if image is None:
            assert row.error and name in row.error and row.score_ai is None and row.label is None, row
        else:
            assert row.error is None, row
            assert row.score_ai == pytest.approx(reference(image), abs=1e-5), name
            assert row.label == ("ai" if row.score_ai >= 0.5 else "real")
    assert "truncated" in rows["truncated.jpg"].error
    assert "empty" in rows["zero.jpg"].error


def test_exif_orientation_gives_the_training_pixels(tiny_model, odd_inputs):
    """Same pixels as training's load_image (EXIF applied), which differ from the stored ones."""
    folder, expected = odd_inputs
    processor = build_image_processor("crop", image_size=CROP)
    _, pixels, error = ImageFiles([str(folder / "exif_rotated.jpg")], processor)[0]
    pixels = pixels[0]  # (1 crop, C, H, W)
    assert error is None
    rotated = processor(expected["exif_rotated.jpg"], return_tensors="pt")["pixel_values"][0]
    stored = processor(Image.open(folder / "exif_rotated.jpg").convert("RGB"), return_tensors="pt")["pixel_values"][0]
    assert torch.equal(pixels, rotated)
    assert not torch.equal(pixels, stored)


def test_scores_equal_pipeline(tiny_model, odd_inputs):
    folder, _ = odd_inputs
    names = ["good.jpg", "alpha.png", "palette.png", "gray.png", "cmyk.jpg", "exif_rotated.jpg", "small.png"]
    paths = [str(folder / n) for n in names]
    pipe = pipeline("image-classification", model=str(tiny_model), device="cpu")
    expected = [next(d["score"] for d in out if d["label"] == "ai") for out in pipe(paths, top_k=2)]
    rows = list(Detector.from_pretrained(tiny_model, backend="torch", precision="fp32", num_workers=0).predict(paths))
    assert [r.score_ai for r in rows] == pytest.approx(expected, abs=1e-5)


def test_decompression_bomb_is_an_error_row(tiny_model, tmp_path, monkeypatch):
    """Between 1x and 2x the limit PIL only warns; both must be refused, smaller images scored."""
    for name, side in (("warns.png", 40), ("raises.png", 60), ("fine.png", 20)):
        Image.fromarray(photo(side, side, side)).save(tmp_path / name)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    rows = score_by_name(list(Detector.from_pretrained(tiny_model, num_workers=0).predict([tmp_path])))
    assert "too many pixels" in rows["warns.png"].error and "too many pixels" in rows["raises.png"].error
    assert rows["fine.png"].error is None and rows["fine.png"].score_ai is not None


def test_load_truncated_images_is_off_after_imports(tiny_model, odd_inputs, monkeypatch):
    """Nothing we import turns PIL's grey-filling of truncated files on; if a user does, we still refuse."""
    load_script("predict")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    folder, _ = odd_inputs
    detector = Detector.from_pretrained(tiny_model, num_workers=0)
    (row,) = detector.predict([folder / "truncated.jpg"])
    assert row.error and "truncated" in row.error
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the user's setting is restored


def test_inputs_files_folders_globs_and_missing(tiny_model, tmp_path):
    (tmp_path / "a" / "deep").mkdir(parents=True)
    for rel in ("a/one.jpg", "a/deep/two.PNG", "b.webp"):
        Image.fromarray(photo(40, 40, 1)).save(tmp_path / rel)
    (tmp_path / "a" / "notes.txt").write_text("skipped: not an image extension")
    detector = Detector.from_pretrained(tiny_model, num_workers=0)
    inputs = [tmp_path / "a", str(tmp_path / "*.webp"), tmp_path / "missing.jpg", str(tmp_path / "*.gif")]
    rows = list(detector.predict(inputs))
    names = [Path(r.path).name for r in rows]
    assert names == ["two.PNG", "one.jpg", "b.webp", "missing.jpg", "*.gif"]
    assert [r.error is None for r in rows] == [True, True, True, False, False]
    assert "no such file" in rows[3].error and "matched no files" in rows[4].error


def test_non_finite_output_is_an_error_not_a_score(tiny_model, odd_inputs):
    detector = Detector.from_pretrained(tiny_model, num_workers=0)
    detector.runner = lambda pixels: np.full((len(pixels), 2), np.nan, dtype=np.float32)
    folder, _ = odd_inputs
    (row,) = detector.predict([folder / "good.jpg"])
    assert row.score_ai is None and "not finite" in row.error


def test_threshold_from_config_and_override(tiny_trained_model):
    """Labels follow the model's calibrated decision_threshold unless a threshold is given."""
    data = tiny_trained_model.parent / "data"
    detector = Detector.from_pretrained(tiny_trained_model, backend="torch", precision="fp32", num_workers=0)
    assert detector.threshold == pytest.approx(getattr(detector.config, "decision_threshold", 0.5))
    rows = list(detector.predict([data]))
    scores = np.array([r.score_ai for r in rows])
    assert len(rows) > 20 and not any(r.error for r in rows)
    assert [r.label for r in rows] == ["ai" if s >= detector.threshold else "real" for s in scores]
    middle = float(np.median(scores))
    mid = Detector.from_pretrained(tiny_trained_model, precision="fp32", threshold=middle, num_workers=0)
    mid_rows = list(mid.predict([data]))
    assert [r.score_ai for r in mid_rows] == pytest.approx(scores.tolist(), abs=1e-5)
    assert [r.label for r in mid_rows] == ["ai" if s >= middle else "real" for s in scores]
    assert {r.label for r in mid_rows} == {"ai", "real"}
    with pytest.raises(ValueError):
        Detector.from_pretrained(tiny_trained_model, threshold=1.5)


def test_auto_backend_without_onnx_is_torch_fp32(tiny_model, monkeypatch):
    monkeypatch.setattr("modeling.inference.predictor.cpu_has_native_bf16", lambda: True)
    assert Detector.from_pretrained(tiny_model).backend_name == "torch-fp32"  # native bf16 or not
    assert Detector.from_pretrained(tiny_model, backend="torch").backend_name == "torch-fp32"
    with pytest.raises(ModelLoadError, match="export_onnx"):
        Detector.from_pretrained(tiny_model, backend="onnx")


def test_bf16_autocast_close_to_fp32_and_guarded(tiny_model, odd_inputs, monkeypatch):
    """bf16 (emulated where the CPU lacks it) stays near fp32; a first batch that disagrees drops bf16."""
    folder, _ = odd_inputs
    paths = [folder / n for n in ("good.jpg", "alpha.png", "gray.png", "small.png")]
    fp32_detector = Detector.from_pretrained(tiny_model, backend="torch", precision="fp32", num_workers=0)
    fp32 = [r.score_ai for r in fp32_detector.predict(paths)]
    bf16 = Detector.from_pretrained(tiny_model, backend="torch", precision="bf16", num_workers=0)
    assert bf16.backend_name == "torch-bf16"
    assert [r.score_ai for r in bf16.predict(paths)] == pytest.approx(fp32, abs=BF16_TOLERANCE)
    monkeypatch.setattr("modeling.inference.runners.BF16_TOLERANCE", -1.0)
    guarded = Detector.from_pretrained(tiny_model, backend="torch", precision="bf16", num_workers=0)
    assert [r.score_ai for r in guarded.predict(paths)] == pytest.approx(fp32, abs=1e-6)
    assert guarded.backend_name == "torch-fp32"


def test_not_a_detector_is_refused(tmp_path):
    TinyModelTester.save(tmp_path, num_labels=3, id2label={0: "real", 1: "ai", 2: "other"},
                         label2id={"real": 0, "ai": 1, "other": 2})
    with pytest.raises(ModelLoadError, match="not a real/ai detector"):
        Detector.from_pretrained(tmp_path)


# --------------------------------------------------------------------------- CLI


def test_cli_csv_and_jsonl(tiny_model, odd_inputs, tmp_path, caplog):
    folder, expected = odd_inputs
    caplog.set_level("INFO")
    predict = load_script("predict")
    out_csv, out_jsonl = tmp_path / "out.csv", tmp_path / "out.jsonl"
    common = ["--model", str(tiny_model), str(folder), "--num_workers", "1", "--no_progress"]
    assert predict.main([*common, "--output", str(out_csv)]) == 0  # some inputs failed: still 0
    assert "backend: torch-" in caplog.text
    with out_csv.open() as handle:
        table = list(csv.DictReader(handle))
    assert list(table[0])[:4] == ["path", "label", "score_ai", "error"]
    assert all(column.startswith("provenance_") for column in list(table[0])[4:])  # beside the score, after it
    assert len(table) == len(expected)
    assert predict.main([*common, "--output", str(out_jsonl), "--threshold", "0"]) == 0
    records = [json.loads(line) for line in out_jsonl.read_text().splitlines()]
    assert [r["path"] for r in records] == [r["path"] for r in table]
    for row, record in zip(table, records, strict=True):
        if expected[Path(row["path"]).name] is None:
            assert row["error"] and record["error"] and record["score_ai"] is None and row["score_ai"] == ""
        else:
            assert float(row["score_ai"]) == pytest.approx(record["score_ai"], abs=1e-9)
            assert record["label"] == "ai"  # threshold 0: everything scored is ai


def test_cli_exit_codes(tiny_model, odd_inputs, tmp_path, caplog):
    folder, _ = odd_inputs
    caplog.set_level("INFO")
    predict = load_script("predict")
    bad = [str(folder / n) for n in ("truncated.jpg", "zero.jpg", "text.jpg")]
    assert predict.main(["--model", str(tiny_model), *bad, "--no_progress", "--num_workers", "0"]) == 1
    assert predict.main(["--model", str(tmp_path / "no_model"), str(folder), "--no_progress"]) == 2
    assert predict.main(["--model", str(tiny_model), str(folder), "--output", str(tmp_path / "x.txt")]) == 2
    assert "3 inputs, 0 scored (none), 3 errors" in caplog.text and "no input could be scored" in caplog.text


def test_predict_images_in_memory(tiny_model, odd_inputs, reference):
    """The in-process path for demos and notebooks: PIL images and bytes, errors as rows."""
    folder, expected = odd_inputs
    detector = Detector.from_pretrained(tiny_model, precision="fp32", num_workers=0)
    image = Image.open(folder / "palette.png")
    rows = detector.predict_images([image, (folder / "text.jpg").read_bytes()])
    assert rows[0].score_ai == pytest.approx(reference(expected["palette.png"]), abs=1e-5)
    assert rows[0].path.endswith("palette.png")
    assert rows[1].score_ai is None and "cannot decode" in rows[1].error


# --------------------------------------------------------------------------- several crops of a large image


def test_crops_spread_over_the_image_and_reach_its_borders():
    from modeling.processing import crop_grid, crop_origins

    assert crop_grid(4, 1000, 1000) == (2, 2) and crop_grid(6, 2000, 1000) == (2, 3)
    assert crop_origins(4, 1000, 600, 200, 200) == [(0, 0), (800, 0), (0, 400), (800, 400)]
    assert crop_origins(1, 1000, 600, 200, 200) == [(400, 200)]  # the processor's own center crop
    assert crop_origins(9, 200, 200, 200, 200) == [(0, 0)]  # an image of the crop's size: one crop


def test_several_crops_average_the_logits(tiny_model, tmp_path):
    """A large image: the score is softmax of the mean of the crops' logits; a crop-sized image is unchanged."""
    from modeling.processing import process_image

    rng = np.random.default_rng(3)
    large = Image.fromarray(rng.integers(0, 256, (3 * CROP, 4 * CROP, 3), dtype=np.uint8))
    small = Image.fromarray(rng.integers(0, 256, (CROP, CROP, 3), dtype=np.uint8))
    large.save(tmp_path / "large.png")
    small.save(tmp_path / "small.png")
    processor = build_image_processor("crop", image_size=CROP)
    crops = process_image(processor, large, 4)
    assert crops.shape == (4, 3, CROP, CROP)
    assert torch.equal(crops[0], processor(large.crop((0, 0, CROP, CROP)), return_tensors="pt")["pixel_values"][0])
    model = AutoModelForImageClassification.from_pretrained(tiny_model).eval()
    with torch.no_grad():
        expected = float(ai_scores(model(pixel_values=crops).logits.mean(0, keepdim=True).numpy())[0])
    multi = Detector.from_pretrained(tiny_model, backend="torch", precision="fp32", crops=4, num_workers=0)
    single = Detector.from_pretrained(tiny_model, backend="torch", precision="fp32", crops=1, num_workers=0)
    rows = {Path(r.path).name: r.score_ai for r in multi.predict([tmp_path / "large.png", tmp_path / "small.png"])}
    assert rows["large.png"] == pytest.approx(expected, abs=1e-6)
    assert rows["large.png"] != pytest.approx(single.predict_images([large])[0].score_ai, abs=1e-4)
    assert rows["small.png"] == pytest.approx(single.predict_images([small])[0].score_ai, abs=1e-6)
    assert multi.predict_images([large])[0].score_ai == pytest.approx(expected, abs=1e-6)


@pytest.mark.slow  # three fresh Python processes (launcher + 2 workers) importing torch
def test_accelerate_launch_two_processes_write_one_output_in_input_order(tiny_model, odd_inputs, tmp_path):
    """`accelerate launch` with 2 CPU processes: each scores half, one CSV comes out, equal to one process's."""
    import os
    import subprocess
    import sys

    folder, _ = odd_inputs
    root = Path(__file__).resolve().parent.parent
    args = ["--model", str(tiny_model), str(folder), "--no_progress", "--crops", "4", "--precision", "fp32"]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)}
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    done = subprocess.run([*launch, str(root / "scripts" / "predict.py"), *args, "--output", str(tmp_path / "two.csv")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "process 2 of 2" in done.stderr and "process 1 of 2" in done.stderr
    assert load_script("predict").main([*args, "--output", str(tmp_path / "one.csv")]) == 0
    with open(tmp_path / "one.csv", newline="") as one, open(tmp_path / "two.csv", newline="") as two:
        single, launched = list(csv.DictReader(one)), list(csv.DictReader(two))
    assert [r["path"] for r in launched] == [r["path"] for r in single] and len(single) > 4
    for a, b in zip(single, launched, strict=True):
        assert (a["label"], a["error"]) == (b["label"], b["error"])
        assert a["score_ai"] == b["score_ai"] or float(a["score_ai"]) == pytest.approx(float(b["score_ai"]), abs=1e-6)


def test_crops_reach_the_model_in_calls_of_at_most_batch_size(tiny_model, tmp_path):
    """16 crops of each of 2 large images with batch_size 3: no model call gets more than 3 crops (one
    call with every crop of a batch took 22 GB in the multi-crop benchmark), and the scores are unchanged."""
    rng = np.random.default_rng(5)
    images = [Image.fromarray(rng.integers(0, 256, (5 * CROP, 5 * CROP, 3), dtype=np.uint8)) for _ in range(2)]
    fp32 = dict(backend="torch", precision="fp32", crops=16, num_workers=0)
    wide = Detector.from_pretrained(tiny_model, batch_size=64, **fp32)
    narrow = Detector.from_pretrained(tiny_model, batch_size=3, **fp32)
    sizes = []
    runner = narrow.runner
    narrow.runner = lambda pixels: sizes.append(len(pixels)) or runner(pixels)
    scores = [r.score_ai for r in narrow.predict_images(images)]
    assert max(sizes) <= 3 and sum(sizes) == 2 * 16
    np.testing.assert_allclose(scores, [r.score_ai for r in wide.predict_images(images)], atol=1e-5)
