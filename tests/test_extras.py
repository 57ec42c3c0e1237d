"""A script whose extra is missing names the extra to install; prediction needs none of them.

Each case runs a script in a fresh process that sees a copy of this environment's site-packages without the
extra's packages (symlinks to every other entry; `python -S` so the real site-packages is not added), which is
what a machine without that extra looks like, with no second environment to install.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
EXTRA_MODULES = {  # the top-level names (modules and their dist-info) of each extra's packages, as setup.cfg lists them
    "train": ["datasets", "accelerate", "evaluate", "sklearn", "scikit_learn", "pandas", "matplotlib", "pyarrow"],
    "onnx": ["onnx", "onnxscript", "onnxruntime"],
    "app": ["gradio"],
    "reconstructions": ["diffusers"],
}


def site_without(blocked: list[str], tmp_path: Path) -> Path:
    """A folder of links to every site-packages entry but the blocked packages (modules and metadata)."""
    site, fake = Path(sysconfig.get_paths()["purelib"]), tmp_path / "site-packages"
    fake.mkdir()
    for entry in site.iterdir():
        if re.split(r"[-.]", entry.name)[0].lower() not in blocked:
            (fake / entry.name).symlink_to(entry)
    return fake


def run_without(blocked: list[str], *argv: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site_without(blocked, tmp_path)), str(ROOT)])}
    return subprocess.run([sys.executable, "-S", *argv], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize(("script", "args", "extra"), [
    ("app.py", ["--model", "nowhere"], "app"),
    ("train.py", ["--max_steps", "1"], "train"),
    ("evaluate.py", ["--model", "nowhere"], "train"),
    ("validate_data.py", ["--data_dir", "nowhere"], "train"),
    ("export_onnx.py", ["--model", "nowhere"], "onnx"),
    ("make_reconstructions.py", ["--data_dir", "nowhere", "--vae", "v", "--num", "1", "--out", "nowhere2"],
     "reconstructions"),
])
def test_a_missing_extra_is_named_with_its_install_line(script: str, args: list[str], extra: str,
                                                       tmp_path: Path) -> None:
    done = run_without(EXTRA_MODULES[extra], f"scripts/{script}", *args, tmp_path=tmp_path)
    assert done.returncode != 0
    assert f"needs the '{extra}' extra" in done.stderr and f"pip install -e '.[{extra}]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_prediction_runs_on_the_core_install_alone(tiny_trained_model: Path, tmp_path: Path) -> None:
    """`pip install .` promises predict.py: with every extra's modules refused it still scores a file."""
    Image.new("RGB", (48, 40), (90, 140, 30)).save(tmp_path / "photo.png")
    blocked = [m for modules in EXTRA_MODULES.values() for m in modules]
    out = tmp_path / "scores.csv"
    done = run_without(blocked, "scripts/predict.py", "--model", str(tiny_trained_model), "--backend", "torch",
                       str(tmp_path / "photo.png"), "--output", str(out), tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "photo.png" in out.read_text()
