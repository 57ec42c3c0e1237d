"""Issue 5, security: weights come only from safetensors, remote code is never trusted.

The check that a Hub token never reaches a run's output folder or logs lives in
test_reliability.py, on the reference training run it already makes.
"""

from __future__ import annotations

import ast
import pickle
import re
from pathlib import Path

import pytest
import torch
from tiny_model import TinyModelTester
from transformers import ConvNextForImageClassification

from modeling.config import ModelArguments
from modeling.training.builders import build_model

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted([*(ROOT / "modeling").rglob("*.py"), *(ROOT / "scripts").rglob("*.py")])
MODEL_CLASS = re.compile(r"Model|For[A-Z]")  # AutoModelFor..., ConvNextForImageClassification, ...


def _calls(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Call):
            yield node


def _receiver(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        value = func.value
        return value.id if isinstance(value, ast.Name) else getattr(value, "attr", "")
    return ""


def _is_true(call: ast.Call, keyword: str) -> bool:
    return any(k.arg == keyword and isinstance(k.value, ast.Constant) and k.value.value is True for k in call.keywords)


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(ROOT)}:{node.lineno}"


def test_sources_are_scanned() -> None:
    assert ROOT / "modeling" / "model.py" in SOURCES and ROOT / "scripts" / "train.py" in SOURCES


def test_trust_remote_code_is_never_passed() -> None:
    found = []
    for path in SOURCES:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "trust_remote_code":
                found.append(_where(path, node.value))
            if isinstance(node, ast.Constant) and node.value == "trust_remote_code":  # {"trust_remote_code": ...}
                found.append(_where(path, node))
    assert not found, f"trust_remote_code passed at {found}"


def test_models_load_only_from_safetensors() -> None:
    """Every model `from_pretrained` says use_safetensors=True; pipelines get it via model_kwargs."""
    unsafe = []
    for path in SOURCES:
        for call in _calls(path):
            func = call.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            loads_model = name == "from_pretrained" and MODEL_CLASS.search(_receiver(call))
            if loads_model and not _is_true(call, "use_safetensors"):
                unsafe.append(_where(path, call))
            if name == "pipeline" and not any(k.arg == "model_kwargs" for k in call.keywords):
                unsafe.append(_where(path, call) + " (pipeline without model_kwargs={'use_safetensors': True})")
            if name == "load" and _receiver(call) == "torch" and not _is_true(call, "weights_only"):
                unsafe.append(_where(path, call) + " (torch.load without weights_only=True)")
    assert not unsafe, f"weights may be read from a pickle at: {unsafe}"


def _tiny_model() -> ConvNextForImageClassification:
    return TinyModelTester.model()


class _Trap:
    """Unpickling this creates a file: proof that a pickle was executed."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickled_weights_are_refused(tmp_path: Path) -> None:
    model = _tiny_model()
    model.config.save_pretrained(tmp_path)
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(OSError, match="safetensors"):
        build_model(ModelArguments(model_name_or_path=str(tmp_path)))


def test_a_pickle_beside_safetensors_is_never_opened(tmp_path: Path) -> None:
    _tiny_model().save_pretrained(tmp_path)
    marker = tmp_path / "pickle-was-executed"
    (tmp_path / "pytorch_model.bin").write_bytes(pickle.dumps(_Trap(marker)))
    model = build_model(ModelArguments(model_name_or_path=str(tmp_path)))
    assert model.config.num_labels == 2
    assert not marker.exists()
