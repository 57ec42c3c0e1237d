"""What the generated evaluation sets share: array/tensor conversions, PIL resizing in float mode (the sensor's
area-averaging shrink among them), a Gaussian blur, random colours, pixel grids, smooth random fields, the blind and
sealed sets' common recipe for one image, and the learned and hard-real sets' phone-like Bayer camera. One owner, so
that the sets' bytes cannot drift apart by a copy being edited.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from modeling.data.demo import artifact_postprocess  # ArtiFact's finish, one owner
from modeling.data.generated import GeneratedSet

# the blind and sealed sets: each image rendered at a side of 200..264 px (rounded down to a multiple of 8),
# then ArtiFact's finish from a crop side of 160 up
RENDER_MIN, RENDER_MAX = 200, 264
MIN_CROP = 160
REAL_SHARE = 1.5  # images per real source = 1.5 x images_per_source: two real sources as many as three AI ones
RealImage = Callable[[str, np.random.Generator, int], tuple[np.ndarray, str]]  # (source, rng, side) -> image, category
GeneratorFn = Callable[[np.ndarray, np.random.Generator], np.ndarray]  # (real image, rng) -> its fake


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """(H, W, C) float array -> (1, C, H, W) float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32)).permute(2, 0, 1)[None]


def to_array(x: torch.Tensor) -> np.ndarray:
    """(1, C, H, W) tensor -> (H, W, C) float32 array."""
    return x[0].permute(1, 2, 0).contiguous().numpy().astype(np.float32)


def resize(img: np.ndarray, w: int, h: int, method: Image.Resampling) -> np.ndarray:
    """Resize a float (H, W, C) image per channel in PIL's float mode (antialiased when shrinking)."""
    chans = [np.asarray(Image.fromarray(img[..., c]).resize((w, h), method)) for c in range(img.shape[2])]
    return np.stack(chans, axis=-1).astype(np.float32)


def shrink(img: np.ndarray, w: int, h: int) -> np.ndarray:
    """Area-average resize: how a sensor integrates a finer image."""
    return resize(img, w, h, Image.Resampling.BOX)


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of a (1, C, H, W) tensor, replicate padding."""
    r = max(1, math.ceil(3 * sigma))
    k = torch.exp(-(torch.arange(-r, r + 1, dtype=torch.float32) ** 2) / (2 * sigma * sigma))
    k = (k / k.sum()).repeat(x.shape[1], 1, 1)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k[:, :, None, :], groups=x.shape[1])
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k[:, :, :, None], groups=x.shape[1])


def fit_on_crops(
    make_model: Callable[[], torch.nn.Module],
    loss: Callable[[torch.nn.Module, torch.Tensor, np.random.Generator], torch.Tensor],
    pool: torch.Tensor, steps: int, fit: Mapping[str, float], lr: float, seed: int, family: int,
) -> dict[str, np.ndarray]:
    """A set's generator fitted on random crops of its pool (Adam, a fixed number of steps, `fit`'s batch and crop);
    its weights as numpy arrays. torch's init and the crop draws are keyed by (seed, family), so each generator of a
    set is deterministic on one thread and independent of the others' order."""
    torch.manual_seed(seed + family)
    rng = np.random.default_rng([seed, family])
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    crop, side = int(fit["crop"]), pool.shape[-1]
    for _ in range(steps):
        pick = rng.integers(0, len(pool), size=int(fit["batch"]))
        y, x = (int(v) for v in rng.integers(0, side - crop + 1, size=2))
        value = loss(model, pool[pick, :, y : y + crop, x : x + crop], rng)
        opt.zero_grad()
        value.backward()
        opt.step()
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def random_colour(rng: np.random.Generator, lo: float = 0.05, hi: float = 0.95) -> np.ndarray:
    """A random RGB colour, each channel in lo..hi."""
    return rng.uniform(lo, hi, size=3).astype(np.float32)


def pixel_grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [0, 1): (y, x), each (n, n)."""
    axis = (np.arange(n, dtype=np.float32) + 0.5) / n
    return np.meshgrid(axis, axis, indexing="ij")


def finished_image(
    source: str,
    index: int,
    seed: int,
    prepared: None = None,
    *,
    sources: tuple[str, ...],
    real_image: RealImage,
    generators: Mapping[str, GeneratorFn],
) -> tuple[bytes, str]:
    """JPEG bytes and category of image `index` of `source` in a set whose fakes are its real content passed through
    a generator: a real source's content (a random real source's, for an AI source), its generator, ArtiFact's
    finish. A pure function of its arguments, at a fixed torch thread count (a convolution's sums depend on it)."""
    real_sources = tuple(s for s in sources if s not in generators)
    rng = np.random.default_rng([seed, sources.index(source), index])
    size = int(rng.integers(RENDER_MIN, RENDER_MAX + 1)) // 8 * 8
    content = source if source in real_sources else str(rng.choice(real_sources))
    img, category = real_image(content, rng, size)
    if source in generators:
        img = generators[source](img, rng)
    return artifact_postprocess(img, rng, min_side=MIN_CROP), category


def camera_set(
    name: str,
    targets: Mapping[str, int],
    categories: Mapping[str, tuple[str, ...]],
    real_image: RealImage,
    generators: Mapping[str, GeneratorFn],
    description: str,
) -> GeneratedSet:
    """A set made by `finished_image`: real sources (`categories` maps each to its own) and AI sources (`generators`)
    in `targets`' order, REAL_SHARE times as many images per real source, kept in data/<name>."""
    return GeneratedSet(
        name=name,
        targets=targets,
        categories=tuple(c for cats in categories.values() for c in cats),
        # a partial of a module-level function, with module-level functions bound: the workers can load it
        make_image=partial(finished_image, sources=tuple(targets), real_image=real_image, generators=generators),
        root=Path("data") / name,
        real_share=REAL_SHARE,
        description=description,
    )


def smooth_field(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """A smooth random (h, w) field: a Gaussian grid of about `cells` cells across, bicubic-upsampled, unit std."""
    ch, cw = max(1, round(cells * h / max(h, w))), max(1, round(cells * w / max(h, w)))
    grid = torch.from_numpy(rng.standard_normal((1, 1, ch + 2, cw + 2)).astype(np.float32))
    out = F.interpolate(grid, size=(h + 2 * h // ch, w + 2 * w // cw), mode="bicubic", align_corners=False)
    out = out[0, 0, h // ch : h // ch + h, w // cw : w // cw + w].numpy()
    return (out - out.mean()) / (out.std() + 1e-6)


# ---------------------------------------------------------------- a phone-like Bayer camera (learned, hard_real)
# Linear scene light -> lens -> RGGB mosaic with shot and read noise, 10-bit raw -> white balance on the raw ->
# Malvar-He-Cutler demosaic -> colour matrix -> noise reduction (guided filter on luma, blurred chroma) -> global
# tone curve -> cored luma sharpening -> the camera's JPEG. Pipelines that change a stage (a burst, a local tone
# map) call the stages themselves.
# Malvar-He-Cutler 5x5 kernels (/8): G at R or B; the other colour at a G site with it in the row; in the column;
# at the opposite colour's site (diagonal neighbours)
_MHC_X8 = [
    [[0, 0, -1, 0, 0], [0, 0, 2, 0, 0], [-1, 2, 4, 2, -1], [0, 0, 2, 0, 0], [0, 0, -1, 0, 0]],
    [[0, 0, 0.5, 0, 0], [0, -1, 0, -1, 0], [-1, 4, 5, 4, -1], [0, -1, 0, -1, 0], [0, 0, 0.5, 0, 0]],
    [[0, 0, -1, 0, 0], [0, -1, 4, -1, 0], [0.5, 0, 5, 0, 0.5], [0, -1, 4, -1, 0], [0, 0, -1, 0, 0]],
    [[0, 0, -1.5, 0, 0], [0, 2, 0, 2, 0], [-1.5, 0, 6, 0, -1.5], [0, 2, 0, 2, 0], [0, 0, -1.5, 0, 0]],
]
_MHC = np.array(_MHC_X8, dtype=np.float32) / 8
_LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class Shot:
    """One exposure's settings, drawn per image by `draw_shot`; a pipeline changes some with `dataclasses.replace`."""

    phase: tuple[int, int]  # where the RGGB pattern starts
    exposure: float  # scene light -> raw full scale
    vignette: float  # light lost at the corners
    shot_noise: float  # Poisson gain (variance per unit signal)
    read_noise: float
    illuminant: tuple[float, float, float]  # the light's colour, undone by white balance
    saturation: float  # the colour matrix's strength
    luma_nr: float  # guided-filter epsilon (0: none)
    chroma_nr: float  # Gaussian sigma of the chroma blur
    shoulder: float  # highlight roll-off of the tone curve
    contrast: float  # S-curve steepness
    sharpen: float  # unsharp-mask amount on luma
    quality: int  # the camera's JPEG quality
    frames: int = 1  # raw frames averaged (a burst)


def draw_shot(rng: np.random.Generator) -> Shot:
    """A daylight phone exposure: moderate noise, light NR, some sharpening, JPEG 82..96."""
    light = rng.uniform(0.8, 1.2, size=3)
    return Shot(
        phase=(int(rng.integers(2)), int(rng.integers(2))),
        exposure=float(rng.uniform(0.7, 1.3)),
        vignette=float(rng.uniform(0.1, 0.45)),
        shot_noise=float(rng.uniform(0.0003, 0.003)),
        read_noise=float(rng.uniform(0.001, 0.004)),
        illuminant=tuple(float(v) for v in light / light[1]),
        saturation=float(rng.uniform(1.0, 1.35)),
        luma_nr=float(rng.uniform(0.0, 0.0004)),
        chroma_nr=float(rng.uniform(0.8, 1.8)),
        shoulder=float(rng.uniform(0.6, 1.8)),
        contrast=float(rng.uniform(0.8, 2.5)),
        sharpen=float(rng.uniform(0.3, 1.0)),
        quality=int(rng.integers(82, 97)),
    )


@lru_cache(maxsize=64)
def _rggb(h: int, w: int, oy: int, ox: int) -> torch.Tensor:
    """(1, 4, H, W) 0/1 masks of the RGGB sites: R, G in an R row, G in a B row, B."""
    y = (np.arange(h)[:, None] + oy) % 2
    x = (np.arange(w)[None, :] + ox) % 2
    sites = [(y == 0) & (x == 0), (y == 0) & (x == 1), (y == 1) & (x == 0), (y == 1) & (x == 1)]
    return torch.from_numpy(np.stack(sites).astype(np.float32))[None]


def capture(rng: np.random.Generator, lin: np.ndarray, shot: Shot) -> torch.Tensor:
    """The (1, 1, H, W) raw mosaic: light through the lens' vignetting, RGGB sampling, `frames` exposures with shot
    and read noise averaged, 10-bit quantisation, clipping."""
    h, w, _ = lin.shape
    yy, xx = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    fall = (1 - shot.vignette * (yy**2 + xx**2) / 2).astype(np.float32)
    gain = np.float32(shot.exposure) * np.asarray(shot.illuminant, dtype=np.float32)
    light = to_tensor(lin * fall[..., None] * gain)
    site = _rggb(h, w, *shot.phase)
    clean = (light * torch.stack([site[:, 0], site[:, 1] + site[:, 2], site[:, 3]], 1)).sum(1, keepdim=True)
    noise = torch.from_numpy(rng.standard_normal((shot.frames, 2, h, w)).astype(np.float32))
    sigma = torch.sqrt(clean.clamp(min=0) * shot.shot_noise)
    frames = (clean + sigma * noise[:, 0:1] + shot.read_noise * noise[:, 1:2]).clamp(0, 1)
    return (torch.round(frames * 1023) / 1023).mean(0, keepdim=True)  # each frame read out at 10 bits


def demosaic(raw: torch.Tensor, shot: Shot) -> torch.Tensor:
    """White balance on the raw, then Malvar-He-Cutler gradient-corrected interpolation: (1, 1, H, W) -> linear RGB."""
    _, _, h, w = raw.shape
    site = _rggb(h, w, *shot.phase)
    gains = torch.tensor([1 / shot.illuminant[0], 1.0, 1.0, 1 / shot.illuminant[2]])[None, :, None, None]
    raw = raw * (site * gains).sum(1, keepdim=True)
    est = F.conv2d(F.pad(raw, (2, 2, 2, 2), mode="reflect"), torch.from_numpy(_MHC)[:, None])  # parity kept
    g_at, row, col, diag = est[:, 0:1], est[:, 1:2], est[:, 2:3], est[:, 3:4]
    r_site, g_rrow, g_brow, b_site = (site[:, i : i + 1] for i in range(4))
    red = r_site * raw + g_rrow * row + g_brow * col + b_site * diag
    green = (g_rrow + g_brow) * raw + (r_site + b_site) * g_at
    blue = b_site * raw + g_brow * row + g_rrow * col + r_site * diag
    return torch.cat([red, green, blue], 1)


def box_mean(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mean over a (2r+1)^2 window, edges replicated."""
    return F.avg_pool2d(F.pad(x, (r, r, r, r), mode="replicate"), 2 * r + 1, stride=1)


def guided_filter(x: torch.Tensor, r: int, eps: float) -> torch.Tensor:
    """He et al.'s self-guided filter: a local linear fit that flattens variance below eps and keeps edges."""
    mean = box_mean(x, r)
    var = box_mean(x * x, r) - mean * mean
    a = var / (var + eps)
    return box_mean(a, r) * x + box_mean(mean - a * mean, r)


def to_ycc(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """RGB -> (luma (1, 1, H, W), colour differences (1, 3, H, W))."""
    y = sum(c * x[:, i : i + 1] for i, c in enumerate(_LUMA))
    return y, x - y


def tone(lin: torch.Tensor, shot: Shot) -> torch.Tensor:
    """Global tone curve: exponential highlight shoulder, sRGB encoding, a tanh S-curve about mid-grey."""
    k = shot.shoulder
    x = (1 - torch.exp(-k * lin.clamp(min=0))) / (1 - math.exp(-k))
    x = x.clamp(0, 1)
    x = torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.clamp(min=0.0031308) ** (1 / 2.4) - 0.055)
    c = shot.contrast
    return 0.5 + 0.5 * torch.tanh(c * (x - 0.5)) / math.tanh(c / 2)


def finish(x: torch.Tensor, shot: Shot) -> torch.Tensor:
    """Display-referred RGB after the tone curve -> noise reduction and cored luma sharpening, clipped to 0..1."""
    y, chroma = to_ycc(x)
    if shot.luma_nr > 0:
        y = guided_filter(y, 2, shot.luma_nr)
    chroma = blur(chroma, shot.chroma_nr)
    detail = y - blur(y, 1.2)
    detail = torch.sign(detail) * (detail.abs() - 0.004).clamp(min=0)  # coring: flat-area noise is not boosted
    return (y + shot.sharpen * detail + chroma).clamp(0, 1)


def develop(raw: torch.Tensor, shot: Shot) -> torch.Tensor:
    """The raw mosaic -> display RGB (1, 3, H, W): demosaic, colour matrix, tone curve, NR and sharpening."""
    rgb = demosaic(raw, shot)
    y, chroma = to_ycc(rgb)
    return finish(tone(y + shot.saturation * chroma, shot), shot)


def jpeg(img: np.ndarray, quality: int, subsampling: int = 2) -> np.ndarray:
    """A float (H, W, 3) image through a JPEG file and back (subsampling 2 is 4:2:0, 1 is 4:2:2)."""
    pil = Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8))
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", quality=quality, subsampling=subsampling)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), dtype=np.float32) / 255.0


def optics(rng: np.random.Generator, scene: np.ndarray, size: int, scale: float) -> np.ndarray:
    """A scene rendered at `scale` times the sensor: lens blur, then area-averaged onto the size x size pixel grid."""
    sharp = to_array(blur(to_tensor(scene), scale * float(rng.uniform(0.35, 0.7))))
    return shrink(sharp, size, size)


def shoot(rng: np.random.Generator, lin: np.ndarray, shot: Shot | None = None) -> np.ndarray:
    """The whole camera on linear light on the sensor grid: a display-referred float (H, W, 3) image from its JPEG."""
    shot = shot or draw_shot(rng)
    return jpeg(to_array(develop(capture(rng, lin, shot), shot)), shot.quality)
