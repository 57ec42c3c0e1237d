"""make_reconstructions.py with a tiny random-init diffusers AutoencoderKL, offline: the folder it writes is an
ArtiFact source the loader indexes as AI, the run resumes, refuses foreign folders, and never touches the reals."""

from __future__ import annotations

import hashlib
from pathlib import Path

import diffusers  # the `reconstructions` extra, part of .[dev]
import pandas as pd
import pytest
from conftest import load_script
from PIL import Image

from modeling.data.demo import DemoSpec, make_demo_data
from modeling.data.index import read_artifact_index


@pytest.fixture(scope="module")
def tiny_vae(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("vae")
    diffusers.AutoencoderKL(
        block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=4, layers_per_block=1,
    ).save_pretrained(folder)
    return folder


def digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_reconstructions_are_an_artifact_source_and_the_reals_stay_untouched(tiny_vae, tmp_path):
    data = make_demo_data(tmp_path / "data", DemoSpec(images_per_source=3), progress=False)
    before = digests(data)
    out = data / "vae_recon"
    script = load_script("make_reconstructions")
    argv = ["--data_dir", str(data), "--vae", str(tiny_vae), "--num", "4", "--out", str(out), "--no_progress"]
    assert script.main(argv) == 0
    index = read_artifact_index(data)
    recon = index[index["source"] == "vae_recon"]
    assert len(recon) == 4 and (recon["label"] == 1).all()
    originals = [p.split("/", 1)[1] for p in recon["path"]]  # vae_recon/<source>/<path> of a real image
    assert all(p.split("/")[0] in ("scenes", "textures") for p in originals)
    for path in recon["path"]:
        with Image.open(data / path) as image:
            assert image.format == "JPEG" and image.size == (200, 200)
    assert {k: v for k, v in digests(data).items() if not k.startswith("vae_recon/")} == before

    # resumable: only the missing reconstruction is written again
    first = sorted(out.rglob("*.jpg"))
    stamps = {p: p.stat().st_mtime_ns for p in first}
    first[0].unlink()
    assert script.main(argv) == 0
    assert first[0].is_file() and all(p.stat().st_mtime_ns == stamps[p] for p in first[1:])
    assert len(pd.read_csv(out / "metadata.csv")) == 4


def test_refuses_a_foreign_folder_and_other_settings(tiny_vae, tmp_path, caplog):
    data = make_demo_data(tmp_path / "data", DemoSpec(images_per_source=2), progress=False)
    script = load_script("make_reconstructions")
    base = ["--data_dir", str(data), "--vae", str(tiny_vae), "--no_progress"]
    assert script.main([*base, "--num", "2", "--out", str(data / "scenes")]) == 2  # a user's source folder
    assert "not written by make_reconstructions" in caplog.text
    assert script.main([*base, "--num", "2", "--out", str(tmp_path / "r")]) == 0
    assert script.main([*base, "--num", "3", "--out", str(tmp_path / "r")]) == 2
    assert "pick another --out or the same settings" in caplog.text


def test_manifest_limits_to_the_runs_training_reals(tiny_vae, tmp_path):
    from modeling.data.manifest import build_manifest, save_manifest

    data = make_demo_data(tmp_path / "data", DemoSpec(images_per_source=6), progress=False)
    manifest = build_manifest(data, num_real=0, num_ai=0, validation_fraction=0.2, test_fraction=0.2)
    save_manifest(manifest, tmp_path / "manifest.csv")
    out = tmp_path / "recon"
    assert load_script("make_reconstructions").main(
        ["--data_dir", str(data), "--vae", str(tiny_vae), "--num", "100", "--out", str(out),
         "--manifest", str(tmp_path / "manifest.csv"), "--no_progress"]) == 0
    written = set(pd.read_csv(out / "metadata.csv")["image_path"])
    train_reals = manifest[(manifest["split"] == "train") & (manifest["label"] == 0)]["path"]
    assert written == {str(Path(p).with_suffix(".jpg")) for p in train_reals}
