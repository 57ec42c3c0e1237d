"""The generated image sets (benchmarks/sets/ and the demo data) on tiny copies, each behaviour checked on every set:
layout and labels, class sizes, categories, determinism, containment, complete folders. Then what is particular to
one set, and the plain-CNN baseline (benchmarks/baseline_cnn.py) on the blind set."""

from __future__ import annotations

import argparse
import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import one_torch_thread
from PIL import Image
from tqdm.auto import tqdm

from benchmarks import DEMO_CONFIG, baseline_cnn
from benchmarks.sets import HELD_OUT, hard_real, hard_real2, hard_real3, learned, probe, sealed
from benchmarks.sets import SETS as EVALUATION_SETS
from benchmarks.sets.__main__ import build_parser
from modeling.config import parse_config
from modeling.data.demo import DemoSpec, demo_set
from modeling.data.generated import GeneratedSet, _write_source, set_exists, write_set
from modeling.data.index import read_index
from modeling.data.manifest import build_manifest

# the learned sets' generators (learned, probe, hard_real2, hard_real3) fitted for a few steps only: the same code,
# other weights, seconds not minutes
SETS = {**EVALUATION_SETS, "learned": learned.learned_set(steps=2), "learned_probe": probe.probe_set(steps=2),
        "hard_real2": hard_real2.hard_real2_set(steps=2), "hard_real3": hard_real3.hard_real3_set(steps=2),
        "demo": demo_set(DemoSpec())}
PER_SOURCE = 3  # the least that leaves an image of every AI source in the baseline's test split
SEED = 3
Copy = tuple[GeneratedSet, Path, Any]  # a set, the root of its tiny copy, its prepared value


def _write(spec: GeneratedSet, root: Path) -> Any:
    """Write a tiny copy; returns prepare()'s result (the outside set's trained autoencoder), made here once."""
    prepared = None
    if spec.prepare is not None:
        with one_torch_thread():
            prepared = spec.prepare()
        # the workers' prepare() hands over this result: one training of seconds instead of two
        spec = replace(spec, prepare=partial(dict, prepared))
    write_set(spec, root, PER_SOURCE, SEED, progress=False)
    return prepared


@pytest.fixture(scope="module")
def copy_of(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Copy]:
    """Each set's tiny copy, written once for the module, in a fresh parent (to see that nothing lands beside it)."""
    copies: dict[str, Copy] = {}

    def get(name: str) -> Copy:
        if name not in copies:
            root = tmp_path_factory.mktemp(name) / "set"
            copies[name] = (SETS[name], root, _write(SETS[name], root))
        return copies[name]

    return get


@pytest.fixture(scope="module", params=sorted(SETS))
def written(request: pytest.FixtureRequest, copy_of: Callable[[str], Copy]) -> Copy:
    return copy_of(request.param)


def _rows(root: Path, source: str) -> list[dict[str, str]]:
    with open(root / source / "metadata.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_every_source_is_an_artifact_folder_of_200px_jpegs(written: Copy) -> None:
    spec, root, _ = written
    assert sorted(p.name for p in root.iterdir()) == sorted(spec.sources)
    for source in spec.sources:
        rows = _rows(root, source)
        assert len(rows) == spec.images_in(source, PER_SOURCE)
        assert list(rows[0]) == ["image_path", "target", "category"]
        for i, row in enumerate(rows):
            assert int(row["target"]) == spec.targets[source]
            assert row["category"] in spec.categories
            assert row["image_path"] == f"{row['category']}/img{i:06d}.jpg"  # sub-folders per category
            with Image.open(root / source / row["image_path"]) as img:
                assert (img.format, img.size, img.mode) == ("JPEG", (200, 200), "RGB")


def test_the_index_reads_it_with_the_right_labels(written: Copy) -> None:
    spec, root, _ = written
    index = read_index(root)
    assert set(index["source"]) == set(spec.sources)
    for source, label in index.groupby("source")["label"]:
        assert set(label) == {int(spec.targets[source] != 0)}
    assert ((index["label"] == 0).sum(), (index["label"] == 1).sum()) == spec.class_sizes(PER_SOURCE)


@pytest.mark.parametrize("name", ["blind", "sealed", "learned", "learned_probe", "demo"])
def test_real_and_ai_images_are_as_many(name: str) -> None:
    """At an even size, so a plain accuracy is not skewed (the outside set is 1:2: two real sources, four AI ones;
    the hard-real set trains on one real source against three AI ones and tests on seven processed real ones too)."""
    for images_per_source in (2, 300):
        real, ai = SETS[name].class_sizes(images_per_source)
        assert real == ai


def test_the_set_is_written_only_under_its_root(written: Copy) -> None:
    """Nothing beside the root; under it, only each source's metadata.csv and the images it lists."""
    spec, root, _ = written
    assert list(root.parent.iterdir()) == [root]
    listed = {root / s / "metadata.csv" for s in spec.sources}
    listed |= {root / s / r["image_path"] for s in spec.sources for r in _rows(root, s)}
    assert {p for p in root.rglob("*") if p.is_file()} == listed
    assert set_exists(spec, root)


def test_same_seed_same_bytes_in_any_process(written: Copy) -> None:
    """The workers' files equal what this process makes; another seed makes other images."""
    spec, root, prepared = written
    with one_torch_thread():
        for source in spec.sources:
            rows = _rows(root, source)
            i = len(rows) - 1
            data, category = spec.make_image(source, i, SEED, prepared if source in spec.needs_prepared else None)
            assert (root / source / rows[i]["image_path"]).read_bytes() == data
            assert rows[i]["image_path"] == f"{category}/img{i:06d}.jpg"
        source = spec.ai_sources[0]
        other = spec.make_image(source, 0, SEED + 1, prepared if source in spec.needs_prepared else None)[0]
    assert other != (root / source / _rows(root, source)[0]["image_path"]).read_bytes()
    with Image.open(io.BytesIO(other)) as img:
        assert img.size == (200, 200)


def test_any_worker_count_writes_the_same_files(copy_of: Callable[[str], Copy], tmp_path: Path) -> None:
    """Results come back in job order, so the files do not depend on the workers (the demo: the cheapest set)."""
    spec, root, _ = copy_of("demo")
    write_set(spec, tmp_path, PER_SOURCE, SEED, workers=1, progress=False)
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert all((root / f).read_bytes() == (tmp_path / f).read_bytes() for f in files)


def test_a_folder_with_metadata_is_complete(tmp_path: Path) -> None:
    """An interrupted source keeps the images it wrote but no metadata.csv, not even the one from before."""
    spec = SETS["demo"]
    write_set(spec, tmp_path, 1, SEED, workers=1, progress=False)
    assert set_exists(spec, tmp_path)

    def interrupted() -> Iterator[tuple[bytes, str]]:
        yield spec.make_image("scenes", 0, SEED, None)
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"), tqdm(disable=True) as bar:
        _write_source(tmp_path / "scenes", 0, interrupted(), bar)
    assert not (tmp_path / "scenes" / "metadata.csv").exists() and any((tmp_path / "scenes").rglob("*.jpg"))
    assert not set_exists(spec, tmp_path)


def test_a_definition_names_the_sources_its_preparation_serves() -> None:
    with pytest.raises(ValueError, match="go together"):
        replace(SETS["demo"], prepare=dict)
    with pytest.raises(ValueError, match="unknown sources"):
        replace(SETS["demo"], prepare=dict, needs_prepared=("nowhere",))


def test_the_command_line_knows_every_evaluation_set() -> None:
    for name in EVALUATION_SETS:
        args = build_parser().parse_args([name, "--root", "elsewhere"])
        assert (args.name, args.root, args.images_per_source, args.seed) == (name, "elsewhere", 300, 0)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo"])  # the demo data has its own script, scripts/make_demo_data.py


def test_sealed_generators_keep_the_content_and_change_the_pixels() -> None:
    """Aligned content (a detector must learn the trace, not the picture), but not the real image itself."""
    with one_torch_thread():
        img, _ = sealed._real_image("nature", np.random.default_rng(0), 96)
        for name, generate in sealed.GENERATORS.items():
            out = generate(img, np.random.default_rng(1))
            assert out.shape == img.shape, name
            diff = np.abs(out - img)
            assert 0.003 < diff.mean() < 0.08, name


def test_learned_fakes_are_the_fitted_autoencoders_reconstructions(copy_of: Callable[[str], Copy]) -> None:
    """Every decoder maps the content back to its own size; without the fitted weights there is no fake."""
    _, _, prepared = copy_of("learned")
    assert set(prepared) == set(learned.DECODERS)
    with one_torch_thread():
        img, _ = learned._real_image("outdoor", np.random.default_rng(0), 64)
        for name in learned.DECODERS:
            out = learned._reconstruct(img, np.random.default_rng(1), prepared, name)
            assert out.shape == img.shape and np.isfinite(out).all(), name
        with pytest.raises(ValueError, match="fitted decoders"):
            learned._reconstruct(img, np.random.default_rng(1), None, "skip_decoder")


@pytest.mark.parametrize(("name", "module", "generators"), [("hard_real", hard_real, tuple(hard_real.GENERATORS)),
                                                       ("hard_real2", hard_real2, hard_real2.GENERATOR_NAMES)])
def test_hard_real_sets_meet_their_processed_reals_only_in_test(
    copy_of: Callable[[str], Copy], name: str, module: Any, generators: tuple[str, ...]
) -> None:
    """The demo benchmark holds the processing pipelines out (benchmarks/demo.py's prepare step passes HELD_OUT as
    --holdout_generators); the manifest then puts them in test only, and trains on the camera and the generators."""
    spec, root, _ = copy_of(name)
    held = HELD_OUT[name]
    assert set(held) == set(module.PIPELINES) and all(spec.targets[s] == 0 for s in held)
    config = parse_config(["--config", str(DEMO_CONFIG), "--holdout_generators", *held])
    assert config.data.holdout_generators == list(held)
    manifest = build_manifest(root, num_real=None, num_ai=None, holdout_sources=held, seed=0)
    processed = manifest["source"].isin(held)
    assert processed.any() and set(manifest.loc[processed, "split"]) == {"test"}
    assert set(manifest.loc[~processed, "source"]) == {"camera", *generators}


def test_hard_real_generators_keep_the_content_and_change_the_pixels() -> None:
    with one_torch_thread():
        img, _ = hard_real._photo(np.random.default_rng(0), 96)
        for name, generate in hard_real.GENERATORS.items():
            out = generate(img, np.random.default_rng(1))
            assert out.shape == img.shape, name
            assert 0.002 < np.abs(out - img).mean() < 0.08, name


def test_hard_real2_generators_keep_the_content_and_change_the_pixels() -> None:
    """Fitted briefly (the trained weights take a minute): aligned content, a bounded change; no weights, no fake."""
    with one_torch_thread():
        states = hard_real2.fit_generators(steps=25)
        img = hard_real2.photograph(np.random.default_rng(0), "facade", 64)
        for name in hard_real2.GENERATOR_NAMES:
            out = hard_real2.generate(img, np.random.default_rng(1), states, name)
            assert out.shape == img.shape and np.isfinite(out).all(), name
            assert 0.002 < np.abs(out - img).mean() < 0.1, name
            assert np.corrcoef(out.ravel(), img.ravel())[0, 1] > 0.8, name  # the same picture
        with pytest.raises(ValueError, match="fitted generators"):
            hard_real2.generate(img, np.random.default_rng(1), None, "vq_decoder")


@pytest.mark.parametrize("name", sorted(hard_real2.PIPELINES))
def test_hard_real2_pipelines_process_a_capture(name: str) -> None:
    """Each processing returns a display image of about the capture's size (a forwarded share is a little smaller, a
    screenshot taller: the app's chrome) that differs from the plain capture of the same content."""
    category = "poster" if name == "scanner_app" else "knitwear"
    with one_torch_thread():
        out = hard_real2.PIPELINES[name](np.random.default_rng(0), category, 96)
        plain = hard_real2.photograph(np.random.default_rng(0), category, 96)
    h, w = out.shape[:2]
    assert out.shape[2] == 3 and 0.9 * 96 <= w <= 96 <= h / w * 96 and out.dtype == np.float32, name
    assert out.min() >= 0 and out.max() <= 1, name
    assert np.abs(out[:w, :w] - plain[:w, :w]).mean() > 0.005, name


def test_the_baseline_writes_a_roc_auc_per_seed(copy_of: Callable[[str], Copy], tmp_path: Path) -> None:
    spec, root, _ = copy_of("blind")
    parser = argparse.ArgumentParser()
    baseline_cnn.add_arguments(parser)
    out = tmp_path / "baseline"
    argv = ["--data_dir", str(root), "--seeds", "2", "--steps", "3", "--batch_size", "8", "--crop", "32",
            "--output_dir", str(out)]  # fmt: skip
    assert baseline_cnn.run(parser.parse_args(argv)) == 0
    report = json.loads((out / "baseline.json").read_text())
    assert [r["seed"] for r in report["seeds"]] == [0, 1]
    for result in report["seeds"]:
        assert 0.0 <= result["roc_auc"] <= 1.0
        assert set(result["per_source"]) <= set(spec.ai_sources)
    assert (out / "seed0" / "manifest.csv").is_file()  # the split the recipe would use, kept with the figures
