"""Building the detector: a stock `ConvNextForImageClassification` with labels real / ai.

Nothing custom goes into the network, so `AutoModelForImageClassification.from_pretrained` and
`pipeline("image-classification")` load a trained folder with no `trust_remote_code`.
"""

from __future__ import annotations

import logging

from transformers import ConvNextConfig, ConvNextForImageClassification

from modeling.config import ModelArguments
from modeling.labels import ID2LABEL, LABEL2ID

logger = logging.getLogger(__name__)


def build_model(args: ModelArguments) -> ConvNextForImageClassification:
    """A pretrained backbone with a new 2-way head, or a random-init ConvNext from the config."""
    labels = dict(num_labels=len(ID2LABEL), id2label=ID2LABEL, label2id=LABEL2ID)
    if args.model_name_or_path:
        logger.info("loading pretrained %s with a new %d-way head", args.model_name_or_path, len(ID2LABEL))
        return ConvNextForImageClassification.from_pretrained(
            args.model_name_or_path,
            drop_path_rate=args.drop_path_rate,
            ignore_mismatched_sizes=True,  # the 1000-way ImageNet head is replaced
            use_safetensors=True,
            **labels,
        )
    config = ConvNextConfig(
        num_channels=3,
        patch_size=args.patch_size,
        hidden_sizes=list(args.hidden_sizes),
        depths=list(args.depths),
        layer_scale_init_value=args.layer_scale_init_value,
        drop_path_rate=args.drop_path_rate,
        image_size=args.image_size,
        **labels,
    )
    return ConvNextForImageClassification(config)
