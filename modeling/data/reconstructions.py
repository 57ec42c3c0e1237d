"""Real images passed through a real VAE, written as one more ArtiFact-layout source (aligned hard fakes).

A reconstruction keeps the picture of its real image and carries the decoder's trace, so a detector
trained with both must learn the trace, not the content (the idea behind B-Free, DRCT and aligned
training). Output: `<out>/<source>/<path of the real>.jpg` and `<out>/metadata.csv` (target 1,
category "vae_reconstruction"), saved as JPEG at a quality drawn from ArtiFact's 65..100, as the reals
were.

Safety: the real images are only read. `out` must be absent, empty, or a folder this wrote with the
same settings (a hidden marker records them); files already written are skipped, so an interrupted
run resumes. Needs diffusers (`pip install '.[reconstructions]'`).
"""

from __future__ import annotations

import csv
import json
import logging
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from modeling.data.index import METADATA_COLUMNS, METADATA_FILE, DataError, read_index
from modeling.data.manifest import load_manifest
from modeling.images import ImageLoadError, load_image

logger = logging.getLogger(__name__)

RECON_MARKER = ".reconstructions.json"  # the settings that wrote the folder; hidden, so the index ignores it
RECON_TARGET = 1
RECON_CATEGORY = "vae_reconstruction"
JPEG_QUALITY = (65, 100)  # ArtiFact's range, for reals and fakes alike (shared/ARTIFACT_FORMAT.md)


@dataclass
class ReconSpec:
    """Which VAE, how many real images, and the seed that picks them and their JPEG qualities."""

    vae: str
    num: int
    seed: int = 0
    sample: bool = False  # sample the latent instead of taking its mode


def make_reconstructions(
    data_dir: str | Path,
    out: str | Path,
    spec: ReconSpec,
    *,
    manifest: str | Path | None = None,
    batch_size: int = 8,
    device: str | None = None,
    progress: bool = True,
) -> int:
    """Write `spec.num` reconstructions (fewer when there are fewer reals) and return how many the folder holds."""
    out = Path(out)
    settings = {**asdict(spec), "data_dir": str(Path(data_dir).resolve()),
                "manifest": str(Path(manifest).resolve()) if manifest else None}
    claim_folder(out, settings)
    reals = choose_reals(Path(data_dir), spec, manifest)
    done = {path for path in reals if (out / output_name(path)).is_file()}
    todo = [path for path in reals if path not in done]
    logger.info("%d reconstructions: %d already written, %d to make", len(reals), len(done), len(todo))
    if todo:
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        vae = load_vae(spec.vae, device)
        bar = tqdm(total=len(todo), desc="reconstructions", unit="img", disable=not progress)
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            done.update(write_batch(vae, Path(data_dir), out, chunk, spec, device))
            write_metadata(out, sorted(done))  # after every batch: an interrupted folder is still a valid source
            bar.update(len(chunk))
        bar.close()
    write_metadata(out, sorted(done))
    return len(done)


def claim_folder(out: Path, settings: dict[str, Any]) -> None:
    """Refuse a folder that holds anything this did not write, or that another setting wrote."""
    marker = out / RECON_MARKER
    if marker.is_file():
        recorded = json.loads(marker.read_text())
        if recorded != settings:
            changed = sorted(k for k in settings if recorded.get(k) != settings[k])
            raise DataError(f"{str(out)!r} was written with other settings (changed: {', '.join(changed)}); "
                            "pick another --out or the same settings")
        return
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{str(out)!r} is not empty and was not written by make_reconstructions; "
                        "pick another --out (an absent or empty folder)")
    out.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(settings) + "\n")


def choose_reals(data_dir: Path, spec: ReconSpec, manifest: str | Path | None) -> list[str]:
    """A seeded draw of `spec.num` real images (paths relative to data_dir), in path order."""
    if manifest:
        frame = load_manifest(manifest)
        frame = frame[(frame["split"] == "train") & (frame["label"] == 0)]
    else:
        frame = read_index(data_dir)
        frame = frame[frame["label"] == 0]
    paths = sorted(frame["path"])
    if not paths:
        raise DataError(f"No real images found under {str(data_dir)!r}"
                        + (f" in the train split of {str(manifest)!r}" if manifest else "") + ".")
    if not (data_dir / paths[0]).is_file():
        raise DataError(f"{str(data_dir / paths[0])!r} does not exist: is --data_dir the manifest's data?")
    order = np.random.default_rng(spec.seed).permutation(len(paths))[: spec.num]
    return [paths[i] for i in sorted(order)]


def output_name(real_path: str) -> str:
    """`scenes/a/img1.png` -> `scenes/a/img1.jpg`: the source of the real stays visible in the path."""
    return Path(real_path).with_suffix(".jpg").as_posix()


def load_vae(name: str, device: str) -> torch.nn.Module:
    try:
        from diffusers import AutoencoderKL
    except ImportError as err:
        raise DataError("make_reconstructions needs diffusers: pip install '.[reconstructions]'") from err
    try:
        vae = AutoencoderKL.from_pretrained(name)
    except (OSError, ValueError) as err:
        raise DataError(f"Cannot load the VAE {name!r} ({err}); pass a diffusers AutoencoderKL folder or Hub id.") from err
    return vae.to(device).eval()


def _seed_of(spec: ReconSpec, path: str) -> int:
    return zlib.crc32(f"{spec.seed}:{path}".encode())


def write_batch(
    vae: torch.nn.Module, data_dir: Path, out: Path, paths: list[str], spec: ReconSpec, device: str
) -> list[str]:
    """Reconstruct and save one batch (returns the reals written); one size goes through the VAE together."""
    images = {}
    for path in paths:
        try:
            images[path] = load_image(data_dir / path)
        except ImageLoadError as err:
            logger.warning("skipped %s: %s", path, err)
    by_size: dict[tuple[int, int], list[str]] = {}
    for path, image in images.items():
        by_size.setdefault(image.size, []).append(path)
    for group in by_size.values():
        decoded = reconstruct(vae, [images[p] for p in group], spec, [_seed_of(spec, p) for p in group], device)
        for path, image in zip(group, decoded):
            save_jpeg(image, out / output_name(path), _seed_of(spec, path))
    return list(images)


@torch.no_grad()
def reconstruct(vae: torch.nn.Module, images: list[Image.Image], spec: ReconSpec, seeds: list[int],
                device: str) -> list[Image.Image]:
    """Encode and decode same-size RGB images; sides padded (reflect) to the VAE's stride, then cropped back."""
    width, height = images[0].size
    stride = 2 ** (len(vae.config.block_out_channels) - 1)
    pixels = torch.stack([torch.from_numpy(np.asarray(i, dtype=np.float32)).permute(2, 0, 1) for i in images])
    pixels = pixels.to(device) / 127.5 - 1.0
    pad = (0, -width % stride, 0, -height % stride)
    if any(pad):
        pixels = torch.nn.functional.pad(pixels, pad, mode="reflect")
    dist = vae.encode(pixels).latent_dist
    if spec.sample:
        noise = torch.stack([torch.randn(dist.mean.shape[1:], generator=torch.Generator().manual_seed(s))
                             for s in seeds]).to(device)
        latent = dist.mean + dist.std * noise
    else:
        latent = dist.mode()
    decoded = vae.decode(latent).sample[:, :, :height, :width]
    rgb = ((decoded.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(a) for a in rgb]


def save_jpeg(image: Image.Image, path: Path, seed: int) -> None:
    """Save at a quality drawn per image; written under a temporary name first, so no half file is left."""
    quality = int(np.random.default_rng(seed).integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    image.save(partial, format="JPEG", quality=quality)
    partial.replace(path)


def write_metadata(out: Path, written: list[str]) -> None:
    """metadata.csv of the reconstructions written (an unreadable real leaves no row)."""
    rows = [(output_name(p), RECON_TARGET, RECON_CATEGORY) for p in written]
    partial = out / f".{METADATA_FILE}.partial"
    with open(partial, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(METADATA_COLUMNS)
        writer.writerows(rows)
    partial.replace(out / METADATA_FILE)
