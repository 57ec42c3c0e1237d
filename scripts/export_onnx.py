"""Export a trained model folder to ONNX beside its weights, check it, optionally quantize to int8.

    python scripts/export_onnx.py --model outputs/demo                     # model.onnx, parity vs torch
    python scripts/export_onnx.py --model outputs/demo --quantize int8     # + model_int8.onnx, ROC-AUC check
    python scripts/export_onnx.py --model my_model --images my_photos/ --quantize int8   # any folder, unlabelled

Real images drive both checks: by default the run's own manifest (calibration on its validation rows,
checks on its test rows, under the data_dir recorded at training time or --data_dir). The fp32
graph must match torch within 1e-3 in P(ai); int8 must keep ROC-AUC within 0.005 of fp32 on labelled
images, or on unlabelled ones (--images) change at most 1% of the labels at the model's threshold.
The figures (score differences included) go to <model>/onnx_export.json and a failed check removes
its file (exit status 1). Training runs this itself at its end (`export_onnx: true`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from modeling.extras import require_modules, requires_extra

require_modules("onnx", ("onnx", "onnxscript", "onnxruntime"), "scripts/export_onnx.py")  # used deep in the export
with requires_extra("onnx", "scripts/export_onnx.py"):
    from modeling.data.index import DataError
    from modeling.data.selection import run_check_images
    from modeling.inference.images import expand_inputs
    from modeling.inference.onnx_export import CheckImages, ExportError, export
    from modeling.run_folder import MANIFEST, ONNX_RECORD

logger = logging.getLogger("export_onnx")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="Model folder written by training.")
    parser.add_argument("--quantize", choices=["int8"], default=None, help="Also write a static int8 model.")
    parser.add_argument("--data_dir", help="Image root of the model's manifest (default: from training_config.yaml).")
    parser.add_argument("--images", nargs="+", help="Unlabelled images/folders/globs instead of the manifest.")
    parser.add_argument("--num_calibration", type=int, default=128, help="Images to calibrate int8 on.")
    parser.add_argument("--num_check", type=int, default=2048,
                        help="Images to check parity, verdict agreement and ROC-AUC on.")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO)
    args = build_parser().parse_args(argv)
    try:
        if args.images:
            images = CheckImages.unlabelled([item.path for item in expand_inputs(args.images) if item.error is None])
        elif not (Path(args.model) / MANIFEST).is_file():
            raise DataError(f"{args.model} has no {MANIFEST} (a folder not trained here?): pass --images DIR with "
                            "images to check the export on")
        else:
            images = CheckImages(*run_check_images(args.model, args.data_dir))
        record = export(args.model, images, args.quantize, args.num_calibration, args.num_check)
    except (DataError, ExportError, OSError) as err:
        logger.error("%s", err)
        return 1
    print(json.dumps({k: record[k] for k in ("fp32", "int8") if k in record}, indent=2))
    logger.info("wrote %s", f"{args.model}/{ONNX_RECORD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
