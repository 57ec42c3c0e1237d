"""Which optional extra a command needs: a missing one ends the command with the install line, not a traceback.

`pip install .` brings the core (`pipeline`, `Detector`, predict.py); training, ONNX export, the web demo,
provenance and real-VAE reconstructions each need an extra of setup.cfg. A script wraps the imports of its
extra in `requires_extra`, so `No module named 'gradio'` becomes "scripts/app.py needs the 'app' extra".
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager


class MissingExtra(SystemExit):
    """A command's optional dependency is not installed; the message says which extra installs it."""


def install_hint(extra: str, missing: str | None = None) -> str:
    """The line that installs an extra, for a checkout (scripts) and for an installed package."""
    what = f" (No module named {missing!r})" if missing else ""
    return (f"needs the '{extra}' extra{what}: pip install -e '.[{extra}]' in the repository, or "
            f"pip install 'artifact-detector[{extra}]'")


@contextmanager
def requires_extra(extra: str, command: str | None = None) -> Iterator[None]:
    """Turn a ModuleNotFoundError of a third-party module inside the block into MissingExtra naming `extra`.

    A missing module of this package itself is a real bug and is raised as it is."""
    try:
        yield
    except ModuleNotFoundError as err:
        root = (err.name or "").split(".")[0]
        if not root or root == __name__.split(".")[0]:
            raise
        who = command or (sys.argv[0] if sys.argv and sys.argv[0] else "this command")
        raise MissingExtra(f"{who} {install_hint(extra, err.name)}") from err


def require_modules(extra: str, modules: tuple[str, ...], command: str | None = None) -> None:
    """MissingExtra unless every module can be found: for an extra that the command imports only deep inside
    its work (the ONNX tools, diffusers), checked before any work starts."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        who = command or (sys.argv[0] if sys.argv and sys.argv[0] else "this command")
        raise MissingExtra(f"{who} {install_hint(extra, missing[0])}")
