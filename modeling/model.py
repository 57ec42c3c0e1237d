"""Building the detector: a stock `ConvNextForImageClassification` with labels real / ai.

Nothing custom goes into the network, so `AutoModelForImageClassification.from_pretrained` and
`pipeline("image-classification")` load a trained folder with no `trust_remote_code`.

A random-init network can start its stem as a high-pass filter bank (`stem_init: highpass`), the way
forensic CNNs start their first layer (Bayar & Stamm's constrained convolution, SRM and wavelet
stems). Why it matters here: ConvNeXt's stem is a stride-k k x k convolution followed by a
LayerNorm over channels at each location. With the stock N(0, 0.02) weights the stem output of a
patch is dominated by the patch's mean colour (97-98% of a 2x2 patch's energy in the demo data), the
LayerNorm then removes the scale, and a generator's period-2/4/8 trace, which lives in the zero-sum
part of the patch, is a ~2% perturbation of what the network sees; whether training ever amplifies it
is then decided by floating-point details. The bank gives the zero-sum (high-frequency) atoms of the
k x k DCT (the Haar basis for k = 2) `stem_highpass_gain` times the gain of the mean-colour atom, so
the trace dominates the stem's output from the first step. Only initial values change: the saved
model is a plain ConvNextConfig and ConvNextForImageClassification.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import torch
from transformers import ConvNextConfig, ConvNextForImageClassification

from modeling.labels import ID2LABEL, LABEL2ID

logger = logging.getLogger(__name__)


def pretrained_detector(name_or_path: str, drop_path_rate: float = 0.0) -> ConvNextForImageClassification:
    """A pretrained ConvNext backbone with a new 2-way real/ai head (safetensors only)."""
    logger.info("loading pretrained %s with a new %d-way head", name_or_path, len(ID2LABEL))
    return ConvNextForImageClassification.from_pretrained(
        name_or_path,
        drop_path_rate=drop_path_rate,
        ignore_mismatched_sizes=True,  # the 1000-way ImageNet head is replaced
        use_safetensors=True,
        num_labels=len(ID2LABEL), id2label=ID2LABEL, label2id=LABEL2ID,
    )


def random_init_detector(
    hidden_sizes: Sequence[int],
    depths: Sequence[int],
    *,
    patch_size: int = 4,
    layer_scale_init_value: float = 1e-6,
    drop_path_rate: float = 0.0,
    image_size: int = 200,
    layer_init: str = "stock",
    layer_init_gain: float = 1.414,
    stem_init: str = "stock",
    stem_highpass_gain: float = 16.0,
    stem_weight_std: float = 0.2,
) -> ConvNextForImageClassification:
    """A random-init ConvNext real/ai classifier, its stages optionally re-drawn at fan-in scale (`init_fan_in`)
    and its stem started as a high-pass bank (`init_highpass_stem`). The saved model is a stock ConvNextConfig."""
    config = ConvNextConfig(
        num_channels=3,
        patch_size=patch_size,
        num_stages=len(hidden_sizes),  # ConvNextConfig's default of 4 would not follow the lists
        hidden_sizes=list(hidden_sizes),
        depths=list(depths),
        layer_scale_init_value=layer_scale_init_value,
        drop_path_rate=drop_path_rate,
        image_size=image_size,
        num_labels=len(ID2LABEL), id2label=ID2LABEL, label2id=LABEL2ID,
    )
    model = ConvNextForImageClassification(config)
    if layer_init == "fan_in":
        init_fan_in(model, layer_init_gain)
    if stem_init == "highpass":
        init_highpass_stem(model, stem_highpass_gain, stem_weight_std)
    return model


@torch.no_grad()
def init_fan_in(model: ConvNextForImageClassification, gain: float) -> None:
    """Re-draw every convolution and linear layer of the stages as N(0, gain^2 / fan_in); stem and head keep theirs.

    Why: transformers' ConvNext draws every weight from N(0, 0.02), a scale made for ConvNeXt-T's 96-768
    channels and pretrained use. In a 48-128 channel network it leaves each block's MLP input at std ~0.14,
    where GELU is nearly linear, and the block's output ~50 times smaller than the residual stream: the
    random network is then close to a linear map of the stem's output, whose global average carries no
    trace energy, and training first has to grow the weights (a plateau of hundreds of steps on weak traces).
    He's fan-in scaling puts GELU in its nonlinear range from the first step. The saved model is a stock
    ConvNext; only its initial values differ.
    """
    stem = model.convnext.embeddings.patch_embeddings
    for module in model.convnext.encoder.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)) and module is not stem:
            fan_in = module.weight[0].numel()  # in_channels/groups x kernel area, or in_features
            module.weight.normal_(0.0, gain / math.sqrt(fan_in))


def dct_basis(k: int) -> torch.Tensor:
    """(k*k, k, k) orthonormal 2-D DCT-II atoms; atom 0 is the constant (mean) one. For k = 2: Haar."""
    n = torch.arange(k, dtype=torch.float64)
    rows = [math.sqrt((1 if u == 0 else 2) / k) * torch.cos(math.pi * (2 * n + 1) * u / (2 * k)) for u in range(k)]
    one_d = torch.stack(rows)  # (frequency, position)
    return torch.einsum("ui,vj->uvij", one_d, one_d).reshape(k * k, k, k)


def highpass_filter_bank(out_channels: int, in_channels: int, k: int, gain: float, std: float) -> torch.Tensor:
    """(out, in, k, k) stem weights: each input channel's DCT atoms, the zero-sum ones times `gain`, mixed
    into the output channels by a random matrix with orthonormal columns (or rows when there are fewer
    outputs than atoms), so the energy shares follow the gains rather than the draw; overall std `std`."""
    atoms = torch.zeros(in_channels * k * k, in_channels, k, k, dtype=torch.float64)
    for c in range(in_channels):
        atoms[c * k * k : (c + 1) * k * k, c] = dct_basis(k)
        atoms[c * k * k + 1 : (c + 1) * k * k] *= gain  # atom 0 of each channel is its mean colour
    atoms = atoms.reshape(len(atoms), -1)  # (in*k*k atoms, in*k*k taps)
    rows, cols = (out_channels, len(atoms)) if out_channels >= len(atoms) else (len(atoms), out_channels)
    mix, _ = torch.linalg.qr(torch.randn(rows, cols, dtype=torch.float64))  # follows the run's seed
    weights = (mix if out_channels >= len(atoms) else mix.T) @ atoms  # (out, in*k*k)
    return (weights * (std / weights.std())).reshape(out_channels, in_channels, k, k).float()


@torch.no_grad()
def init_highpass_stem(model: ConvNextForImageClassification, gain: float, std: float) -> None:
    """Re-initialise the stem convolution in place as `highpass_filter_bank` (see the module docstring)."""
    conv = model.convnext.embeddings.patch_embeddings
    out_channels, in_channels, k, _ = conv.weight.shape
    conv.weight.copy_(highpass_filter_bank(out_channels, in_channels, k, gain, std))
    if conv.bias is not None:
        conv.bias.zero_()
