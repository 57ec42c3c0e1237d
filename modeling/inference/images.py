"""Inputs to batches: files, folders and globs expanded; images decoded and processed in worker processes.

Pixels are exactly evaluation's: every file goes through `load_image` and the image processor saved
beside the weights (the same two calls `BatchTransform` makes), in DataLoader worker processes so
that decoding overlaps with the model. Every input keeps its place: a file that cannot be decoded
becomes an error entry of its batch, never a made-up image.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageFile
from torch.utils.data import DataLoader, Dataset

from modeling.images import ImageLoadError, is_image_name, load_image
from modeling.processing import process_image
from modeling.provenance import Provenance, read_provenance
from modeling.system import available_cores

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class InputItem:
    """A file to score, or an input that resolved to nothing (with the reason)."""

    path: str
    error: str | None = None


def _has_magic(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


def _folder_images(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*") if p.is_file() and is_image_name(p))


def expand_inputs(inputs: Iterable[str | os.PathLike | InputItem]) -> list[InputItem]:
    """Files stay as given, folders become their image files (recursive, sorted), globs their matches.

    A file named explicitly is kept whatever its extension (its decode error will say what it is);
    folders keep only image extensions. Duplicates are scored once.
    """
    items: list[InputItem] = []
    for raw in inputs:
        if isinstance(raw, InputItem):
            items.append(raw)
            continue
        text = os.fspath(raw)
        path = Path(text)
        if path.is_dir():
            found = _folder_images(path)
            items.extend(InputItem(p) for p in found)
            if not found:
                items.append(InputItem(text, f"{text}: folder holds no image files"))
        elif path.exists() or not _has_magic(text):
            items.append(InputItem(text) if path.exists() else InputItem(text, f"{text}: no such file or folder"))
        else:
            matches = sorted(glob.glob(text, recursive=True))
            for match in matches:
                items.extend(InputItem(p) for p in (_folder_images(Path(match)) if Path(match).is_dir() else [match]))
            if not matches:
                items.append(InputItem(text, f"{text}: pattern matched no files"))
    seen: set[str] = set()
    unique = []
    for item in items:
        if item.path not in seen:
            seen.add(item.path)
            unique.append(item)
    return unique


# --------------------------------------------------------------------------- decoding


class ImageFiles(Dataset):
    """Index -> (index, (k, C, H, W) crops or None, error or None): decode, optionally degrade, then the
    saved processor (`process_image`: one crop, or `crops` native-resolution crops of a large image).

    Prediction and evaluation both read files through it, so they see the same pixels.
    """

    def __init__(
        self,
        paths: Sequence[str],
        processor: Any,
        degrade: Callable[[Image.Image], Image.Image] | None = None,
        crops: int = 1,
    ):
        self.paths = list(paths)
        self.processor = processor
        self.degrade = degrade  # the robustness sweep's JPEG, downscale, ...: after decoding, before the processor
        self.crops = crops

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, str | None]:
        path = self.paths[i]
        try:
            image = load_image(path)
            if self.degrade is not None:
                image = self.degrade(image)
            return i, process_image(self.processor, image, self.crops), None
        except ImageLoadError as err:
            return i, None, str(err)
        except Exception as err:  # noqa: BLE001 - one odd file must not end a job over thousands
            return i, None, f"{path}: {type(err).__name__}: {err}"


class ProvenanceFiles(ImageFiles):
    """`ImageFiles` that also reads what each file claims about its origin, in the same worker as its decoding.

    Only the header and the C2PA manifest are parsed (0.2-0.9 ms of CPU a file, `python scripts/benchmark.py
    provenance`; a 1 MP camera JPEG takes ~13 ms to decode), so it overlaps with the model like decoding does.
    """

    def __init__(self, paths: Sequence[str], processor: Any, crops: int = 1, trust_anchors: str | Path | None = None):
        super().__init__(paths, processor, crops=crops)
        self.trust_anchors = trust_anchors

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, str | None, Provenance]:
        index, pixels, error = super().__getitem__(i)
        return index, pixels, error, read_provenance(self.paths[i], self.trust_anchors)


@dataclass
class PixelBatch:
    """A collated batch: positions of all items, the crops of the good ones (`crop_counts[j]` of them
    for the j-th good item, in order), the errors of the rest, and each item's provenance where it was read."""

    indices: list[int]
    good: list[int]
    pixel_values: torch.Tensor | None
    errors: dict[int, str]
    crop_counts: list[int] = field(default_factory=list)
    provenance: dict[int, Provenance | None] = field(default_factory=dict)


def collate_pixels(items: Sequence[tuple]) -> PixelBatch:
    """Items are (index, crops or None, error or None), with the provenance as a fourth entry where read."""
    good = [(item[0], item[1]) for item in items if item[1] is not None]
    return PixelBatch(
        indices=[item[0] for item in items],
        good=[i for i, _ in good],
        pixel_values=torch.cat([px for _, px in good]) if good else None,  # (sum of crops, C, H, W)
        errors={item[0]: item[2] for item in items if item[2] is not None},
        crop_counts=[len(px) for _, px in good],
        provenance={item[0]: item[3] for item in items if len(item) > 3},
    )


def default_num_workers() -> int:
    """Decode workers: on a small CPU one worker overlaps decoding with the model without starving it."""
    return max(1, min(4, available_cores() // 2))


def pixel_batches(
    paths: Sequence[str],
    processor: Any,
    batch_size: int,
    num_workers: int,
    crops: int = 1,
    provenance: bool = False,
    trust_anchors: str | Path | None = None,
) -> Iterator[PixelBatch]:
    """Decoded, processed batches of `batch_size` images in input order, with each file's provenance when
    asked; workers fork so they start without re-importing."""
    context = "fork" if num_workers > 0 and "fork" in torch.multiprocessing.get_all_start_methods() else None
    files = (ProvenanceFiles(paths, processor, crops, trust_anchors) if provenance
             else ImageFiles(paths, processor, crops=crops))
    loader = DataLoader(
        files,
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=collate_pixels,
        multiprocessing_context=context,
    )
    with _strict_truncation():
        yield from loader


@contextlib.contextmanager
def _strict_truncation() -> Iterator[None]:
    """A truncated JPEG must be an error row, not a grey-filled image scored as if it were whole."""
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    if previous:
        logger.warning("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is on; turning it off while predicting")
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous
