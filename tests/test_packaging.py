"""The wheel is the library: no benchmark or set generator in it, its package data present, and it works from
an install that is not a checkout (no configs/ beside it, no git metadata of its own)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DATA = ("modeling/training/detection_metric.py", "modeling/release/model_card_template.md",
                "modeling/provenance/c2pa_trust_config.txt")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip wheel .` of this checkout (no dependencies, no network), built from a copy so nothing lands here."""
    out = tmp_path_factory.mktemp("wheel")
    source = out / "src"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(ROOT), str(source)], check=True)
    for path in subprocess.run(["git", "ls-files", "-mo", "--exclude-standard"], cwd=ROOT, capture_output=True,
                               text=True, check=True).stdout.split():  # the working tree's changes too
        if (ROOT / path).is_file():
            (source / path).parent.mkdir(parents=True, exist_ok=True)
            (source / path).write_bytes((ROOT / path).read_bytes())
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(source)], check=True, capture_output=True)
    return next(out.glob("artifact_detector-*.whl"))


@pytest.mark.slow
def test_the_wheel_holds_the_library_and_its_data_and_no_lab(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.startswith(("benchmarks/", "scripts/", "tests/", "configs/"))]
    assert not [n for n in names if "benchmark" in n or "/sets/" in n]
    for data in PACKAGE_DATA:
        assert data in names


@pytest.mark.slow
def test_an_installed_wheel_works_outside_a_checkout(wheel: Path, tmp_path: Path) -> None:
    """Unpacked into a folder inside some other git repository: the card template and the trust list are found,
    the run records no commit (that repository's commit says nothing about this code), and parsing a config
    without --config asks for one instead of looking for a configs/ folder."""
    site = tmp_path / "project" / "venv" / "site-packages"
    zipfile.ZipFile(wheel).extractall(site)
    project = tmp_path / "project"
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x"],
                   cwd=project, check=True)  # a repository with a commit that git would report from site-packages
    script = (
        "import modeling, modeling.training.run as run\n"
        "from modeling.release.model_card import TEMPLATE\n"
        "from modeling.provenance.credentials import trust_config_text\n"
        "from modeling.config import ConfigError, parse_config\n"
        f"assert modeling.__file__.startswith({str(site)!r}), modeling.__file__\n"
        "assert TEMPLATE.is_file() and '1.3.6.1.5.5.7.3.4' in trust_config_text()\n"
        "assert run.git_commit() == (None, None)\n"
        "try:\n    parse_config([])\nexcept ConfigError as err:\n    print('asks:', err)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-c", script], cwd=project, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "asks: no --config given" in done.stdout
