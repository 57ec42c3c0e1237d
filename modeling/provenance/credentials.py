"""Signed provenance: read a file's C2PA manifest (Content Credentials) with c2pa-python, offline.

c2pa-python is an optional extra (`pip install '.[provenance]'`), imported here on first use only, so
the package imports and reads unsigned metadata without it. The signed claims are reported whatever
the validation says, with the validation state beside them: an invalid manifest still says what it
claimed, and a valid one from an unknown signer is "valid, untrusted signer", not "trusted".
"""

from __future__ import annotations

import io
import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

NONE_FOUND = "none found"
TRUSTED = "trusted"
VALID_UNTRUSTED = "valid, untrusted signer"
INVALID = "invalid"
REMOTE = "remote (not fetched)"
NOT_CHECKED = "not checked (pip install '.[provenance]')"
UNSUPPORTED = "not checked (a format c2pa does not read)"

_STATES = {"Trusted": TRUSTED, "Valid": VALID_UNTRUSTED, "Invalid": INVALID}
_ACTIONS_LABELS = ("c2pa.actions", "c2pa.actions.v2")
_ORIGIN_ACTIONS = ("c2pa.created", "c2pa.opened")
_URL = re.compile(r"https?://\S+")
TRUST_CONFIG = "c2pa_trust_config.txt"


@dataclass(frozen=True)
class Credentials:
    """What the C2PA manifest says (source type, generator, signer) and how far it can be believed (state)."""

    state: str
    source_type: str | None = None
    generator: str | None = None
    signer: str | None = None
    status_codes: tuple[str, ...] = ()
    remote_url: str | None = None


def short_source_type(value: Any) -> str | None:
    """`http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia` -> `trainedAlgorithmicMedia`."""
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip().rstrip("/").rsplit("/", 1)[-1]


def trust_config_text() -> str:
    """The shipped EKU list as c2pa wants it: OIDs only, one a line (the file's comments stripped)."""
    text = resources.files("modeling.provenance").joinpath(TRUST_CONFIG).read_text(encoding="utf-8")
    oids = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return "".join(f"{oid}\n" for oid in oids if oid)


def settings_dict(trust_anchors_pem: str | None = None) -> dict:
    """c2pa settings for reading: never on the network (no OCSP, no remote manifests), thumbnails off."""
    trust: dict[str, str] = {"trust_config": trust_config_text()}
    if trust_anchors_pem:
        trust["trust_anchors"] = trust_anchors_pem
    return {
        "verify": {"ocsp_fetch": False, "remote_manifest_fetch": False},
        "trust": trust,
        "builder": {"thumbnail": {"enabled": False}},
    }


@lru_cache(maxsize=8)
def _context(trust_anchors_pem: str | None) -> Any:
    """One c2pa Context per set of trust anchors: building it parses the settings and certificates."""
    import c2pa

    try:
        return c2pa.Context(c2pa.Settings.from_dict(settings_dict(trust_anchors_pem)))
    except c2pa.C2paError as error:  # e.g. a trust-anchor PEM whose certificates do not parse
        raise ValueError(f"c2pa rejected the reading settings: {error}") from error


if hasattr(os, "register_at_fork"):  # c2pa refuses a Context made before fork() ("Context is not valid"):
    os.register_at_fork(after_in_child=_context.cache_clear)  # a forked decode worker builds its own (0.2 ms)


@lru_cache(maxsize=8)
def _read_anchors(path: str, mtime_ns: int) -> str:
    """The PEM text of a trust-anchor file, cached per path and modification time."""
    text = Path(path).read_text(encoding="utf-8")
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ValueError(f"trust anchors file {path} holds no PEM certificate")
    return text


def load_trust_anchors(path: str | Path | None) -> str | None:
    """PEM text of the caller's trust anchors; a missing or non-PEM file raises (a setup mistake, not a file's)."""
    if path is None:
        return None
    resolved = Path(path).expanduser().resolve()
    return _read_anchors(str(resolved), resolved.stat().st_mtime_ns)


def read_credentials(
    data: bytes, mime: str | None = None, trust_anchors_pem: str | None = None, xmp_remote_url: str | None = None
) -> Credentials:
    """The C2PA manifest of an image's bytes; never raises for a file's content, never goes on the network.

    `mime` is a hint (None lets c2pa detect the container); `xmp_remote_url` is the file's XMP
    `dcterms:provenance`, which c2pa may not report when the manifest is not embedded.
    """
    try:
        import c2pa
    except ImportError:
        return Credentials(REMOTE, remote_url=xmp_remote_url) if xmp_remote_url else Credentials(NOT_CHECKED)
    try:
        context = _context(trust_anchors_pem)
    except OSError as error:  # the packaged EKU list is missing: a broken install, reported on every file
        return Credentials(f"error: c2pa trust configuration unreadable ({error})")
    try:
        reader = c2pa.Reader.try_create(mime, io.BytesIO(data), None, context)
    except c2pa.C2paError.NotSupported:
        return Credentials(UNSUPPORTED)
    except c2pa.C2paError as error:
        return _from_error(str(error), xmp_remote_url)
    except Exception as error:  # the wrapper's own checks (streams, arguments): still a per-file state
        return Credentials(f"error: {type(error).__name__}: {error}")
    if reader is None:
        return Credentials(REMOTE, remote_url=xmp_remote_url) if xmp_remote_url else Credentials(NONE_FOUND)
    with reader:
        try:
            return from_manifest_store(json.loads(reader.json()))
        except (c2pa.C2paError, ValueError, KeyError, TypeError, AttributeError) as error:
            return Credentials(f"error: unreadable manifest ({error})")


def _from_error(message: str, xmp_remote_url: str | None) -> Credentials:
    """A reader error: a manifest kept remotely (c2pa: "Remote: must fetch ... from url U") is not a failure."""
    # c2pa-python 0.38 raises the plain C2paError for this ("Remote" is not one of its typed errors)
    if message.startswith("Remote") or "remote manifest" in message.lower():
        found = _URL.search(message)
        return Credentials(REMOTE, remote_url=found.group(0).rstrip(").,") if found else xmp_remote_url)
    first_line = message.strip().splitlines()[0] if message.strip() else "unknown c2pa error"
    return Credentials(f"error: {first_line}")


def from_manifest_store(store: dict) -> Credentials:
    """Credentials from the JSON of `Reader.json()`: the active manifest's claims and the store's validation."""
    manifest = store.get("manifests", {}).get(store.get("active_manifest"), {})
    raw_state = store.get("validation_state")
    codes = tuple(dict.fromkeys(s.get("code", "") for s in store.get("validation_status") or [] if s.get("code")))
    state = _STATES.get(raw_state, f"error: unknown validation state {raw_state!r}")
    return Credentials(
        state=state,
        source_type=source_type_of(manifest),
        generator=generator_of(manifest),
        signer=signer_of(manifest),
        status_codes=codes,
    )


def source_type_of(manifest: dict) -> str | None:
    """The digital source type of the created/opened action; else that of any other action (e.g. an AI edit)."""
    actions = [
        action
        for assertion in manifest.get("assertions") or []
        if str(assertion.get("label", "")).split("__")[0] in _ACTIONS_LABELS
        for action in (assertion.get("data") or {}).get("actions") or []
        if isinstance(action, dict)
    ]
    origin = [a for a in actions if a.get("action") in _ORIGIN_ACTIONS]
    for action in origin + [a for a in actions if a not in origin]:
        code = short_source_type(action.get("digitalSourceType"))
        if code:
            return code
    return None


def generator_of(manifest: dict) -> str | None:
    """`claim_generator_info` name and version (v2 claims); the older free-text `claim_generator` otherwise."""
    info = manifest.get("claim_generator_info")
    if isinstance(info, dict):
        info = [info]
    for entry in info or []:
        if isinstance(entry, dict) and entry.get("name"):
            return " ".join(str(part) for part in (entry["name"], entry.get("version")) if part)
    legacy = manifest.get("claim_generator")
    return str(legacy) if legacy else None


def signer_of(manifest: dict) -> str | None:
    """The signing certificate's organisation (`signature_info.issuer`), else its common name."""
    info = manifest.get("signature_info") or {}
    return info.get("issuer") or info.get("common_name") or None
