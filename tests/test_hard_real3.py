"""The third hard-real set (benchmarks/sets/hard_real3.py) on a tiny copy with briefly fitted generators: layout and
labels, the same bytes in any process, the processed reals held out to the test split, each processing pipeline and
each generator doing what it claims."""

from __future__ import annotations

import csv
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import one_torch_thread
from PIL import Image

from benchmarks import DEMO_CONFIG
from benchmarks.sets import HELD_OUT, SETS, hard_real3
from benchmarks.sets.__main__ import build_parser
from modeling.config import parse_config
from modeling.data.generated import GeneratedSet, set_exists, write_set
from modeling.data.manifest import build_manifest

PER_SOURCE = 3
SEED = 5


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[GeneratedSet, Path, Any]:
    """The set with generators fitted for 2 steps, PER_SOURCE images per source; (spec, root, prepared)."""
    spec = hard_real3.hard_real3_set(steps=2)
    with one_torch_thread():
        prepared = spec.prepare()
    root = tmp_path_factory.mktemp("hard_real3") / "set"
    write_set(replace(spec, prepare=partial(dict, prepared)), root, PER_SOURCE, SEED, workers=1, progress=False)
    return spec, root, prepared


def _rows(root: Path, source: str) -> list[dict[str, str]]:
    with open(root / source / "metadata.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_the_tiny_copy_is_an_artifact_folder_with_the_right_labels(tiny: tuple[GeneratedSet, Path, Any]) -> None:
    spec, root, _ = tiny
    assert set_exists(spec, root) and sorted(p.name for p in root.iterdir()) == sorted(spec.sources)
    for source in spec.sources:
        rows = _rows(root, source)
        assert len(rows) == PER_SOURCE  # real_share 1: every source as large as each generator
        for i, row in enumerate(rows):
            assert int(row["target"]) == spec.targets[source] and row["category"] in spec.categories
            assert row["image_path"] == f"{row['category']}/img{i:06d}.jpg"
            with Image.open(root / source / row["image_path"]) as img:
                assert (img.format, img.size, img.mode) == ("JPEG", (200, 200), "RGB")


def test_same_seed_same_bytes_in_this_process(tiny: tuple[GeneratedSet, Path, Any]) -> None:
    """The worker's files equal what this process makes; another seed makes another image."""
    spec, root, prepared = tiny
    with one_torch_thread():
        for source in spec.sources:
            rows = _rows(root, source)
            data, _ = spec.make_image(source, len(rows) - 1, SEED, prepared)
            assert (root / source / rows[-1]["image_path"]).read_bytes() == data, source
        other, _ = spec.make_image("patch_mae", 0, SEED + 1, prepared)
    assert other != (root / "patch_mae" / _rows(root, "patch_mae")[0]["image_path"]).read_bytes()


def test_the_processed_reals_are_held_out_to_the_test_split(tiny: tuple[GeneratedSet, Path, Any]) -> None:
    """Registered as hard_real2's are: a run trains on the camera and the generators only."""
    spec, root, _ = tiny
    held = HELD_OUT["hard_real3"]
    assert SETS["hard_real3"] is hard_real3.HARD_REAL3 and SETS["hard_real3"].description.startswith("sealed:")
    assert held == hard_real3.PROCESSED and set(held) == set(hard_real3.PIPELINES)
    assert all(spec.targets[s] == 0 for s in held) and spec.ai_sources == hard_real3.GENERATOR_NAMES
    config = parse_config(["--config", str(DEMO_CONFIG), "--holdout_generators", *held])
    assert config.data.holdout_generators == list(held)
    manifest = build_manifest(root, num_real=None, num_ai=None, holdout_sources=held, seed=0)
    processed = manifest["source"].isin(held)
    assert processed.any() and set(manifest.loc[processed, "split"]) == {"test"}
    assert set(manifest.loc[~processed, "source"]) == {"camera", *hard_real3.GENERATOR_NAMES}
    assert build_parser().parse_args(["hard_real3"]).name == "hard_real3"


def test_its_generator_codes_are_its_own() -> None:
    others = {t for name, s in SETS.items() if name != "hard_real3" for t in s.targets.values() if t != 0}
    assert not others & set(hard_real3.HARD_REAL3.targets.values())


@pytest.mark.parametrize("name", hard_real3.PROCESSED)
def test_each_pipeline_processes_a_capture(name: str) -> None:
    """A display image of about the capture's size (a forwarded share is a little smaller) that differs from the
    plain capture of the same content."""
    with one_torch_thread():
        out = hard_real3.PIPELINES[name](np.random.default_rng(0), "basket", 96)
        plain = hard_real3.photograph(np.random.default_rng(0), "basket", 96)
    h, w = out.shape[:2]
    assert out.dtype == np.float32 and out.shape[2] == 3 and h == w and 0.8 * 96 <= w <= 96, name
    assert out.min() >= 0 and out.max() <= 1 and np.isfinite(out).all(), name
    assert np.abs(out - plain[:h, :w]).mean() > 0.005, name


@pytest.mark.parametrize("category", hard_real3.CATEGORIES)
def test_the_camera_makes_a_plausible_photo(category: str) -> None:
    """Neither black nor blown out, with detail; deterministic per seed."""
    with one_torch_thread():
        img = hard_real3.photograph(np.random.default_rng(1), category, 64)
        again = hard_real3.photograph(np.random.default_rng(1), category, 64)
    assert img.shape == (64, 64, 3) and np.array_equal(img, again)
    assert 0.05 < img.mean() < 0.9 and img.std() > 0.03


def test_the_generators_keep_the_content_and_change_the_pixels() -> None:
    """Fitted briefly: aligned content, a bounded change; without the fitted weights there is no fake."""
    with one_torch_thread():
        states = hard_real3.fit_generators(steps=12)
        img = hard_real3.photograph(np.random.default_rng(0), "mountain", 64)
        for name in hard_real3.GENERATOR_NAMES:
            out = hard_real3.generate(img, np.random.default_rng(1), states, name)
            assert out.shape == img.shape and np.isfinite(out).all(), name
            assert 0.002 < np.abs(out - img).mean() < 0.1, name
            assert np.corrcoef(out.ravel(), img.ravel())[0, 1] > 0.8, name
        with pytest.raises(ValueError, match="fitted generators"):
            hard_real3.generate(img, np.random.default_rng(1), None, "gdn_codec")
