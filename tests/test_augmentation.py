"""Self-made fakes (issue 11): only real training images change label, the final JPEG save carries no
label information, the decoders leave a resampling trace, and evaluation splits never see any of it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_model import TinyModelTester

from modeling.augment.decoders import highpass_residual, random_decoder
from modeling.augment.self_fakes import SelfFakes, label_counts_after_self_fakes, matched_process_share
from modeling.config import ConfigError, parse_config
from modeling.data.demo import DemoSpec, make_demo_data
from modeling.processing import build_image_processor
from modeling.training.builders import build_camera_processing, build_self_fakes
from modeling.training.data import build_datasets, prepare_manifest, processing_frame


def photo(seed: int = 0, size: int = 96) -> Image.Image:
    """Smooth content plus sensor-like noise: a stand-in for a real photograph."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = np.stack([np.sin(6 * xx + c) * np.cos(4 * yy - c) for c in range(3)], -1) * 90 + 128
    return Image.fromarray(np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8))


def test_only_real_images_become_fakes() -> None:
    fakes = SelfFakes(prob=1.0, jpeg_prob=0.0)
    image = photo()
    for seed in range(5):
        out, label = fakes(image, 0, np.random.default_rng(seed))
        assert label == 1 and out.size == image.size
        assert not np.array_equal(np.asarray(out), np.asarray(image))
        same, ai = fakes(image, 1, np.random.default_rng(seed))
        assert ai == 1 and np.array_equal(np.asarray(same), np.asarray(image))  # an ai image is left alone
    untouched, label = SelfFakes(prob=0.0, jpeg_prob=0.0)(image, 0, np.random.default_rng(0))
    assert label == 0 and untouched is image


def test_the_final_jpeg_save_does_not_depend_on_the_label() -> None:
    """Same draw, either label: the save happens (and at the same quality) or not, for both."""
    fakes = SelfFakes(prob=0.0, jpeg_prob=0.5)
    image = photo(1)
    saved = []
    for seed in range(40):
        real, _ = fakes(image, 0, np.random.default_rng(seed))
        ai, _ = fakes(image, 1, np.random.default_rng(seed))
        assert np.array_equal(np.asarray(real), np.asarray(ai))
        saved.append(not np.array_equal(np.asarray(real), np.asarray(image)))
    assert 10 <= sum(saved) <= 30  # the coin is tossed: neither always nor never


def test_a_self_fake_carries_a_resampling_trace_not_just_blur() -> None:
    """Restored detail keeps the high-pass energy near the original's, yet the image is resampled."""
    x = torch.from_numpy(np.asarray(photo(2), dtype=np.float32) / 255).permute(2, 0, 1)
    rng = np.random.default_rng(0)
    for factor in (2, 4, 8):
        y = random_decoder(x, factor, rng)
        assert y.shape == x.shape
        restored = y + highpass_residual(x, factor)
        hp_x, hp_y = highpass_residual(x, 2).pow(2).mean(), highpass_residual(restored, 2).pow(2).mean()
        assert 0.3 < float(hp_y / hp_x) < 3.0
        assert float((restored - x).abs().mean()) > 1e-3


def test_region_cuts_a_window_for_every_label() -> None:
    fakes = SelfFakes(prob=0.5, jpeg_prob=0.0, region=64)
    for label in (0, 1):
        out, _ = fakes(photo(3, 200), label, np.random.default_rng(label))
        assert out.size == (64, 64)


def test_settings_are_checked_and_off_by_default(tmp_path: Path) -> None:
    config = parse_config(["--config", "configs/demo.yaml", "--self_fake_prob", "0"])
    assert build_self_fakes(config.augment) is None
    with pytest.raises(ConfigError, match="self_fake_prob"):
        parse_config(["--config", "configs/demo.yaml", "--self_fake_prob", "1.5"])
    with pytest.raises(ValueError, match="jpeg_quality"):
        SelfFakes(jpeg_quality=(90, 50))


def test_only_the_train_split_gets_self_fakes(tmp_path: Path) -> None:
    data = make_demo_data(tmp_path / "data", DemoSpec(images_per_source=6), progress=False)
    argv = TinyModelTester.train_argv(data, tmp_path / "out", "--image_size", "32", "--train_crop_size", "32",
                                      "--self_fake_prob", "1.0", "--self_fake_region", "48")
    config = parse_config(argv)
    manifest = prepare_manifest(config, tmp_path / "out")
    splits = build_datasets(config, manifest, build_image_processor("crop", 32))
    for name in ("validation", "test"):
        expected = manifest[manifest["split"] == name]["label"].tolist()
        labels = [int(row["labels"]) for row in splits[name]]
        assert labels == expected and 0 in labels  # real images stay real outside training
    train = [int(row["labels"]) for row in splits["train"]]
    assert len(train) == int((manifest["split"] == "train").sum()) and set(train) == {1}  # prob 1: every real faked


def test_the_resample_is_label_blind_and_keeps_the_region() -> None:
    """ArtiFact resized both classes after the generator: the resample coin and scale ignore the label,
    and the window is cut larger (or smaller) so that `region` pixels come out either way."""
    fakes = SelfFakes(prob=0.0, jpeg_prob=0.0, region=64, resample_prob=0.5)
    image = photo(4, 200)
    resized = []
    for seed in range(30):
        real, _ = fakes(image, 0, np.random.default_rng(seed))
        ai, _ = fakes(image, 1, np.random.default_rng(seed))
        assert np.array_equal(np.asarray(real), np.asarray(ai))
        assert abs(real.size[0] - 64) <= 2 and real.size[0] == real.size[1]
        native = np.asarray(image)
        arr = np.asarray(real)
        resized.append(not any(np.array_equal(arr, native[t : t + 64, left : left + 64])
                               for t in range(137) for left in range(137) if arr.shape[:2] == (64, 64)))
    assert 7 <= sum(resized) <= 23  # resampled (no native window) about half the time
    with pytest.raises(ValueError, match="resample"):
        SelfFakes(resample_prob=2.0)


def test_matched_processing_leaves_true_ai_images_alone_and_is_no_label_cue() -> None:
    """'matched': every self-fake is resized and re-saved, a true ai image never, a real that stays real with the
    self-fakes' share of the ai class; so P(processed | ai) = P(processed | real) for the training stream."""
    num_real, num_ai, prob = 40, 80, 0.5
    share = matched_process_share(prob, num_real, num_ai)
    assert share == pytest.approx(20 / 100)
    fakes = SelfFakes(prob=prob, jpeg_prob=1.0, resample_prob=1.0, process_share=share)
    image = photo(5, 32)
    untouched = np.asarray(image)
    processed = {0: 0, 1: 0}
    labelled = {0: 0, 1: 0}
    for seed in range(900):
        label = 0 if seed % 3 == 0 else 1  # the 1:2 real:ai stream of num_real, num_ai
        out, new_label = fakes(image, label, np.random.default_rng(seed))
        changed = np.asarray(out).shape != untouched.shape or not np.array_equal(np.asarray(out), untouched)
        if label == 1:
            assert not changed  # a true ai image keeps its trace
        if label == 0 and new_label == 1:
            assert changed  # a self-fake is always processed
        labelled[new_label] += 1
        processed[new_label] += changed
    rates = {label: processed[label] / labelled[label] for label in (0, 1)}
    assert rates[0] == pytest.approx(share, abs=0.05) and rates[1] == pytest.approx(share, abs=0.05)
    real_after, ai_after = label_counts_after_self_fakes(prob, num_real, num_ai)
    assert (real_after, ai_after) == (20, 100)


def test_processing_rule_from_config(tmp_path: Path) -> None:
    demo = ["--config", "configs/demo.yaml", "--self_fake_learned_prob", "0",  # no fitted decoder needed here
            "--self_fake_prob", "0.5"]
    matched = build_self_fakes(parse_config(demo).augment, num_real=30, num_ai=10)
    assert matched.process_share == pytest.approx(15 / 25)  # 0.5 * 30 fakes of 10 + 15 ai images
    everything = parse_config([*demo, "--self_fake_processing", "all"]).augment
    assert build_self_fakes(everything, 30, 10).process_share is None
    with pytest.raises(ConfigError, match="self_fake_processing"):
        parse_config(["--config", "configs/demo.yaml", "--self_fake_processing", "some"])


def test_the_learned_decoder_is_fitted_reproducibly_and_reconstructs_any_size() -> None:
    from modeling.augment.learned_decoder import DecoderSpec, fit_autoencoder, uint8_images

    arrays = [np.asarray(photo(seed, 64)) for seed in range(4)]
    first = fit_autoencoder(uint8_images(arrays), DecoderSpec(steps=30, seed=3))
    again = fit_autoencoder(uint8_images(arrays), DecoderSpec(steps=30, seed=3))
    for a, b in zip(first.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)  # one thread, one seed: the same weights
    x = torch.from_numpy(arrays[0][:50, :47].copy()).permute(2, 0, 1).float() / 255
    y = first.reconstruct(x)
    assert y.shape == x.shape and not torch.equal(y, x)
    untrained = fit_autoencoder(uint8_images(arrays), DecoderSpec(steps=0, seed=3))
    assert (first.reconstruct(x) - x).abs().mean() < (untrained.reconstruct(x) - x).abs().mean()  # it learned


def test_learned_self_fakes_get_the_detail_back_so_blur_is_no_cue() -> None:
    """An autoencoder's reconstruction is blurred (on the blind set's reals it kept a quarter of the Laplacian
    energy); with hf_restore the original's detail above the x4 latent goes back on it, as for the hand-made
    family, so "less detail" does not say ai and the reconstruction's own deviations remain."""
    from modeling.augment.learned_decoder import DecoderSpec, fit_autoencoder, uint8_images

    arrays = [np.asarray(photo(seed, 64)) for seed in range(4)]
    decoder = fit_autoencoder(uint8_images(arrays), DecoderSpec(steps=30, seed=0))
    image = torch.from_numpy(arrays[1].copy()).permute(2, 0, 1)
    x = image.float() / 255

    def detail(y: torch.Tensor) -> float:
        return float(highpass_residual(y.float() / 255, 2).pow(2).mean() / highpass_residual(x, 2).pow(2).mean())

    blurred, restored = (
        SelfFakes(prob=1.0, jpeg_prob=0.0, hf_restore=(lam, lam), learned=(decoder,), learned_prob=1.0)(
            image, 0, np.random.default_rng(0))[0]
        for lam in (0.0, 1.0)
    )
    assert detail(blurred) < 0.5 < 0.7 < detail(restored) < 1.5
    expected = decoder.reconstruct(x) + highpass_residual(x, decoder.factor)
    assert torch.allclose(restored.float() / 255, expected.clamp(0, 1), atol=1 / 255 + 1e-6)


def test_learned_self_fakes_only_for_training_reals(tmp_path: Path) -> None:
    """self_fake_learned_prob 1: every self-fake is the learned decoder's reconstruction; the decoder is fitted on
    training reals only, and evaluation splits keep their images and labels."""
    from modeling.training.data import learned_decoders

    data = make_demo_data(tmp_path / "data", DemoSpec(images_per_source=6), progress=False)
    argv = TinyModelTester.train_argv(data, tmp_path / "out", "--image_size", "32", "--train_crop_size", "32",
                                      "--self_fake_prob", "1.0", "--self_fake_region", "48",
                                      "--self_fake_learned_prob", "1.0", "--self_fake_learned_steps", "5")
    config = parse_config(argv)
    manifest = prepare_manifest(config, tmp_path / "out")
    (decoder,) = learned_decoders(config, manifest)
    assert not decoder.training
    fakes = build_self_fakes(config.augment, 10, 10, [decoder])
    image = photo(7, 64)
    learned_only = SelfFakes(prob=1.0, jpeg_prob=0.0, hf_restore=(0.0, 0.0), learned=(decoder,), learned_prob=1.0)
    out, label = learned_only(image, 0, np.random.default_rng(0))
    x = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float() / 255
    expected = decoder.reconstruct(x).clamp(0, 1).mul(255).add(0.5).floor().to(torch.uint8).permute(1, 2, 0).numpy()
    assert label == 1 and np.array_equal(np.asarray(out), expected)
    assert fakes.learned == (decoder,) and fakes.learned_prob == 1.0
    splits = build_datasets(config, manifest, build_image_processor("crop", 32))
    for name in ("validation", "test"):
        assert [int(row["labels"]) for row in splits[name]] == manifest[manifest["split"] == name]["label"].tolist()
    assert {int(row["labels"]) for row in splits["train"]} == {1}
    off = parse_config([*argv, "--self_fake_learned_prob", "0"])
    assert learned_decoders(off, manifest) == []
    with pytest.raises(ValueError, match="learned"):
        SelfFakes(learned_prob=0.5)


@pytest.mark.parametrize("arch", ["nearest_conv", "bilinear_conv", "transposed_conv", "pixel_shuffle"])
def test_every_learned_architecture_reconstructs_any_size_at_every_stride(arch: str) -> None:
    from modeling.augment.learned_decoder import SmallAutoencoder

    for factor in (2, 4, 8):
        model = SmallAutoencoder(arch, factor).eval()
        x = torch.rand(3, 37, 50)
        assert model.reconstruct(x).shape == x.shape
        assert model.encoder(torch.rand(1, 3, 64, 64)).shape[-1] == 64 // factor
    with pytest.raises(ValueError, match="architecture"):
        SmallAutoencoder("lanczos_conv", 4)
    with pytest.raises(ValueError, match="power of two"):
        SmallAutoencoder(arch, 3)


def test_the_learned_family_is_fitted_once_and_then_read_from_its_cache(tmp_path: Path) -> None:
    """One autoencoder per (architecture, stride); a second run with the same images and settings loads the
    cached weights (the same tensors) instead of fitting again, and other images give other cache files."""
    from modeling.augment.learned_decoder import family_specs, fit_family, uint8_images

    images = uint8_images([np.asarray(photo(seed, 64)) for seed in range(3)])
    specs = family_specs(["transposed_conv", "pixel_shuffle"], [2, 4], steps=3, seed=1)
    assert [s.name for s in specs] == ["transposed_conv_x2", "transposed_conv_x4", "pixel_shuffle_x2",
                                       "pixel_shuffle_x4"] and len({s.seed for s in specs}) == 4
    assert family_specs(["pixel_shuffle"], [4], steps=3, seed=1) == specs[3:]  # leaving one out keeps the others
    first = fit_family(images, specs, tmp_path / "cache")
    files = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(files) == 4
    for path in (tmp_path / "cache").iterdir():  # a cached file is used as it is: corrupt it, see it used
        from safetensors.torch import load_file, save_file

        save_file({k: v + 1.0 for k, v in load_file(str(path)).items()}, str(path))
    again = fit_family(images, specs, tmp_path / "cache")
    for a, b in zip(first, again, strict=True):
        assert all(torch.equal(x + 1.0, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(),
                                                           strict=True))
    fit_family(images[:2], specs[:1], tmp_path / "cache")
    assert len(list((tmp_path / "cache").iterdir())) == 5


def test_learned_fakes_can_keep_what_the_decoder_leaves() -> None:
    """learned_hf_restore [0, 0]: the learned fakes get no detail back (the hand-made ones still do)."""
    from modeling.augment.learned_decoder import DecoderSpec, fit_autoencoder, uint8_images

    arrays = [np.asarray(photo(seed, 64)) for seed in range(2)]
    decoder = fit_autoencoder(uint8_images(arrays), DecoderSpec("bilinear_conv", 2, steps=5, seed=0))
    image = torch.from_numpy(arrays[0].copy()).permute(2, 0, 1)
    fakes = SelfFakes(prob=1.0, jpeg_prob=0.0, hf_restore=(1.0, 1.0), learned=(decoder,), learned_prob=1.0,
                      learned_hf_restore=(0.0, 0.0))
    out, label = fakes(image, 0, np.random.default_rng(0))
    expected = decoder.reconstruct(image.float() / 255).clamp(0, 1).mul(255).add(0.5).floor().to(torch.uint8)
    assert label == 1 and torch.equal(out, expected)


@pytest.mark.slow
def test_the_family_fitted_in_two_processes_equals_the_one_fitted_here(tmp_path: Path) -> None:
    """The demo fits its decoders in spawn workers, one thread each: the same weights as in this process."""
    from modeling.augment.learned_decoder import family_specs, fit_family, uint8_images

    images = uint8_images([np.asarray(photo(seed, 48)) for seed in range(2)])
    specs = family_specs(["nearest_conv", "pixel_shuffle"], [2], steps=2, seed=0)
    here = fit_family(images, specs, None, workers=1)
    there = fit_family(images, specs, tmp_path / "cache", workers=2)
    for a, b in zip(here, there, strict=True):
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_processing_draws_framed_kinds_for_evaluations_crop_when_self_fakes_cut_windows() -> None:
    """Windows cut before processing: the portrait kind must be drawn for the photo evaluation sees (the processor's
    crop side); without windows the processed image is the whole photo."""
    processor = build_image_processor("crop", 200)
    assert processing_frame(SelfFakes(region=64), processor) == 200
    assert processing_frame(SelfFakes(region=None), processor) is None
    assert processing_frame(None, processor) is None
    config = parse_config(["--config", "configs/demo.yaml"])
    step = build_camera_processing(config.augment, 200)
    assert step.frame == 200 and step.ai_on_subject == config.augment.camera_subject_windows is True
