"""Where the evidence is: Grad-CAM on the last ConvNeXt stage, placed back onto the original image.

    heat = attribution_map(model, processor, image, target=AI_LABEL_ID)   # (H, W) float32 in [0, 1]
    overlay_heatmap(image, heat).save("why.png")

Grad-CAM (Selvaraju et al., 2017): weight each channel of a layer's activation by the spatial mean
of the target's gradient, sum, keep the positive part. The target is the log-odds of one class
against the others, so the map for "ai" shows what pushes P(ai) up. The last ConvNeXt stage is the
latest layer that still has a spatial layout (6x6 at 200 px, 1/32 of the input): coarse, but it is
what the classifier reads. A few lines with hooks instead of the `grad-cam` package, which would
pull in OpenCV for this one function.

The model sees only what the saved processor makes of the image (a native center crop, or a resize
and crop), so the map is placed on the part of the image the model saw (`input_box`) and is zero
elsewhere; that keeps the map honest about a 4000 px photo of which the model saw the middle 200 px.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from modeling.labels import AI_LABEL_ID

logger = logging.getLogger(__name__)

# A perceptual dark-to-bright ramp (anchors sampled from matplotlib's "inferno"), so no matplotlib is needed.
_RAMP = np.array(
    [[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21], [250, 193, 39],
     [252, 255, 164]],
    dtype=np.float32,
)


def last_stage(model: torch.nn.Module) -> torch.nn.Module:
    """The last ConvNeXt stage of a `ConvNextForImageClassification`: (N, C, H/32, W/32) activations."""
    return model.convnext.encoder.stages[-1]


def grad_cam(
    model: torch.nn.Module,
    pixel_values: torch.Tensor,
    target: int = AI_LABEL_ID,
    layer: torch.nn.Module | None = None,
) -> np.ndarray:
    """(N, C, h, w) pixel_values -> (N, h, w) Grad-CAM maps in [0, 1], upsampled to the input's size.

    Each map is divided by its own maximum; a map with no positive evidence stays all zeros.
    """
    layer = layer if layer is not None else last_stage(model)
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, output: captured.append(output))
    try:
        with torch.enable_grad():
            pixel_values = pixel_values.detach().to(next(model.parameters()).device, torch.float32)
            logits = model(pixel_values=pixel_values).logits.float()  # (N, num_labels)
            others = torch.cat([logits[:, :target], logits[:, target + 1 :]], dim=1)
            log_odds = logits[:, target] - torch.logsumexp(others, dim=1)  # (N,)
            (grads,) = torch.autograd.grad(log_odds.sum(), captured[-1])  # (N, C, h', w')
    finally:
        handle.remove()
    activation = captured[-1].detach()
    weights = grads.mean(dim=(2, 3), keepdim=True)  # (N, C, 1, 1)
    cam = torch.relu((weights * activation).sum(dim=1, keepdim=True))  # (N, 1, h', w')
    cam = torch.nn.functional.interpolate(cam, size=pixel_values.shape[-2:], mode="bilinear", align_corners=False)
    peak = cam.amax(dim=(2, 3), keepdim=True)
    cam = torch.where(peak > 0, cam / peak.clamp_min(1e-12), torch.zeros_like(cam))
    return cam[:, 0].cpu().numpy().astype(np.float32)


# --------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class Box:
    """The rectangle of the original image (pixels, may reach outside it) that the model input covers."""

    left: float
    top: float
    right: float
    bottom: float


def _size(value: Any, key: str) -> int | None:
    if value is None:
        return None
    got = value.get(key) if isinstance(value, dict) else getattr(value, key, None)
    return int(got) if got else None


def _resized(processor: Any, width: int, height: int) -> tuple[float, float, int, int, int | None]:
    """(x scale, y scale, resized width, resized height, ConvNext's own square crop or None)."""
    if not getattr(processor, "do_resize", False):
        return 1.0, 1.0, width, height, None
    size = processor.size
    shortest, fixed_h, fixed_w = _size(size, "shortest_edge"), _size(size, "height"), _size(size, "width")
    crop_pct = getattr(processor, "crop_pct", None)
    inner_crop = None
    if shortest and crop_pct is not None and shortest < 384:  # ConvNextImageProcessor: resize to S/crop_pct, crop S
        inner_crop, shortest = shortest, int(shortest / crop_pct)
    elif shortest and crop_pct is not None:  # ConvNext at >= 384 warps to S x S
        fixed_h = fixed_w = shortest
    if fixed_h and fixed_w and not (shortest and inner_crop):
        return fixed_w / width, fixed_h / height, fixed_w, fixed_h, None
    if not shortest:
        raise ValueError(f"unsupported resize size {size}")
    short, long = min(width, height), max(width, height)
    new_long = int(shortest * long / short)  # transformers' get_resize_output_image_size
    new_w, new_h = (shortest, new_long) if width <= height else (new_long, shortest)
    return new_w / width, new_h / height, new_w, new_h, inner_crop


def _crop_origin(size: int, crop: int) -> int:
    """Where a centered crop starts; negative where the processor zero-pads (transformers' center_crop)."""
    if crop > size:
        return -((crop - size) // 2)
    return int((size - crop) / 2.0)


def input_box(processor: Any, width: int, height: int) -> Box:
    """The part of a (width, height) image that `processor` turns into the model input.

    Follows transformers' stock processors (optional resize by shortest edge or to a fixed size,
    ConvNext's crop_pct crop, then an optional center crop that zero-pads small images). Any other
    processor is taken to use the whole image, with a warning.
    """
    try:
        sx, sy, rw, rh, inner = _resized(processor, width, height)
    except (ValueError, TypeError, AttributeError) as err:
        logger.warning("cannot follow this processor's geometry (%s): placing the map on the whole image", err)
        return Box(0.0, 0.0, float(width), float(height))
    left, top, cw, ch = 0, 0, rw, rh
    if inner:
        left, top, cw, ch = _crop_origin(rw, inner), _crop_origin(rh, inner), inner, inner
    crop = getattr(processor, "crop_size", None)
    if getattr(processor, "do_center_crop", False) and _size(crop, "height") and _size(crop, "width"):
        new_h, new_w = _size(crop, "height"), _size(crop, "width")
        left, top = left + _crop_origin(cw, new_w), top + _crop_origin(ch, new_h)
        cw, ch = new_w, new_h
    return Box(left / sx, top / sy, (left + cw) / sx, (top + ch) / sy)


def place_on_image(cam: np.ndarray, box: Box, width: int, height: int) -> np.ndarray:
    """Stretch an (h, w) input-space map over `box` on a (height, width) canvas; zero outside the box."""
    canvas = np.zeros((height, width), dtype=np.float32)
    left, top = int(round(box.left)), int(round(box.top))
    box_w, box_h = max(1, int(round(box.right)) - left), max(1, int(round(box.bottom)) - top)
    as_image = Image.fromarray(np.ascontiguousarray(cam, dtype=np.float32))  # float32 -> mode "F"
    stretched = np.asarray(as_image.resize((box_w, box_h), Image.Resampling.BILINEAR))
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + box_w, width), min(top + box_h, height)
    if x1 > x0 and y1 > y0:
        canvas[y0:y1, x0:x1] = stretched[y0 - top : y1 - top, x0 - left : x1 - left]
    return np.clip(canvas, 0.0, 1.0)


def attribution_map(
    model: torch.nn.Module,
    processor: Any,
    image: Image.Image,
    target: int = AI_LABEL_ID,
    out_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Grad-CAM of `target` for one PIL image, as an (H, W) float32 map in [0, 1] over the image.

    out_size=(W', H') gives the map for a resized copy of the image (e.g. a display thumbnail)
    while the model still sees the original pixels.
    """
    pixel_values = processor(image.convert("RGB"), return_tensors="pt")["pixel_values"]  # (1, C, h, w)
    cam = grad_cam(model, pixel_values, target=target)[0]
    box = view_box(processor, image.size, out_size)
    width, height = out_size or image.size
    return place_on_image(cam, box, width, height)


def view_box(processor: Any, image_size: tuple[int, int], out_size: tuple[int, int] | None = None) -> Box:
    """`input_box` for an image of image_size=(W, H), in the pixels of a copy resized to out_size=(W', H')."""
    width, height = image_size
    box = input_box(processor, width, height)
    if out_size is None:
        return box
    fx, fy = out_size[0] / width, out_size[1] / height
    return Box(box.left * fx, box.top * fy, box.right * fx, box.bottom * fy)


def colorize(heat: np.ndarray) -> np.ndarray:
    """(H, W) values in [0, 1] -> (H, W, 3) uint8 colours on a dark-to-bright ramp."""
    position = np.clip(heat, 0.0, 1.0) * (len(_RAMP) - 1)
    low = np.floor(position).astype(int).clip(0, len(_RAMP) - 2)
    frac = (position - low)[..., None]
    return (_RAMP[low] * (1 - frac) + _RAMP[low + 1] * frac).round().astype(np.uint8)


def overlay_heatmap(
    image: Image.Image, heat: np.ndarray, alpha: float = 0.55, box: Box | None = None
) -> Image.Image:
    """The image with the heat map blended on top, more opaque where the evidence is stronger.

    box: outline the region the model sees (from `view_box`), so an uncoloured area reads as
    "not looked at" rather than "no evidence".
    """
    if heat.shape != (image.height, image.width):
        raise ValueError(f"heat map {heat.shape} does not match the image {(image.height, image.width)}")
    base = np.asarray(image.convert("RGB"), dtype=np.float32)
    weight = (alpha * np.clip(heat, 0.0, 1.0))[..., None]
    blended = base * (1 - weight) + colorize(heat).astype(np.float32) * weight
    out = Image.fromarray(blended.round().clip(0, 255).astype(np.uint8))
    if box is not None:
        corners = [box.left, box.top, box.right - 1, box.bottom - 1]
        ImageDraw.Draw(out).rectangle(corners, outline=(0, 200, 255), width=max(1, min(out.size) // 150))
    return out
