"""Unsigned provenance: what a file's metadata says about its maker (XMP, PNG text chunks, EXIF).

Anyone can write or strip these fields, so every finding is labelled "(unsigned claim)". Only headers
are read: `Image.open` parses metadata and leaves the pixels undecoded, which keeps this at about a
millisecond an image. PNG text chunks after the image data are not seen (reaching them means decoding).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from modeling.provenance.credentials import short_source_type

UNSIGNED = "(unsigned claim)"
# name shown -> pattern in free text (Software, CreatorTool, text chunks); a small list of well-known generators
KNOWN_GENERATORS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.IGNORECASE))
    for name, pattern in (
        ("Stable Diffusion", r"stable[\s_-]?diffusion|automatic1111|\bsdxl\b"),
        ("ComfyUI", r"comfy\s?ui"),
        ("Midjourney", r"midjourney"),
        ("DALL-E", r"\bdall[\s·._-]?e\b"),
        ("Adobe Firefly", r"\bfirefly\b"),
        ("NovelAI", r"novel\s?ai"),
        ("InvokeAI", r"invoke\s?ai"),
        ("Fooocus", r"fooocus"),
        ("Leonardo.Ai", r"leonardo\.?ai"),
        ("Ideogram", r"ideogram"),
    )
)
# PNG text keys that one family of tools writes, whatever the value says
_CHUNK_WRITERS = {
    "parameters": "Stable Diffusion",  # AUTOMATIC1111 and its forks (Forge, SD.Next, Fooocus)
    "invokeai_metadata": "InvokeAI",
    "invokeai_graph": "InvokeAI",
    "sd-metadata": "InvokeAI",
    "fooocus_scheme": "Fooocus",
}
_XMP_KEYS = ("xmp", "XML:com.adobe.xmp")
_QUOTED = r"\s*=\s*[\"']([^\"']+)[\"']"
_ELEMENT = r"\s*>\s*([^<\s][^<]*?)\s*<"
_XMP_SOURCE_TYPE = re.compile(rf"DigitalSourceType(?:{_QUOTED}|{_ELEMENT}|[^>]*?resource{_QUOTED})")
_XMP_CREATOR_TOOL = re.compile(rf"CreatorTool(?:{_QUOTED}|{_ELEMENT})")
_XMP_REMOTE = re.compile(rf"dcterms:provenance(?:{_QUOTED}|{_ELEMENT})")
_A1111_MODEL = re.compile(r"(?:^|,\s*)Model:\s*([^,\n]+)")
EXIF_SOFTWARE, EXIF_IFD, EXIF_USER_COMMENT = 305, 0x8769, 0x9286


@dataclass(frozen=True)
class Metadata:
    """A file's unsigned provenance: labelled claims, the container's MIME type, a remote-manifest URL."""

    claims: tuple[str, ...] = ()
    mime: str | None = None
    remote_url: str | None = None
    error: str | None = None


def read_metadata(data: bytes) -> Metadata:
    """Unsigned claims from the header of an image's bytes; an unreadable file gives `error`, never raises."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            xmp = xmp_text(image)
            claims = [
                *_guarded(xmp_claims, xmp),
                *(_guarded(text_chunk_claims, image) if image.format == "PNG" else []),
                *_guarded(exif_claims, image),
            ]
            return Metadata(tuple(dict.fromkeys(claims)), Image.MIME.get(image.format or ""), xmp_remote_url(xmp))
    except UnidentifiedImageError:
        return Metadata(error="not an image format Pillow can read")
    except Exception as error:  # Pillow's header parsers raise many types on a broken file
        return Metadata(error=f"{type(error).__name__}: {error}")


def _guarded(extract: Callable[..., list[str]], source: object) -> list[str]:
    """One malformed field (a broken EXIF block, odd XMP) must not hide the others."""
    try:
        return extract(source)
    except Exception:  # as in read_metadata: a broken field raises any type
        return []


def fix_mojibake(text: str) -> str:
    """Pillow reads tEXt chunks as latin-1; UTF-8 written there comes back garbled: re-decode where it round-trips."""
    try:
        return text.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return text


def xmp_text(image: Image.Image) -> str:
    """The XMP packet: `info["xmp"]` (JPEG, WebP, TIFF: bytes) or the PNG iTXt `XML:com.adobe.xmp` (text)."""
    raw = next((image.info[key] for key in _XMP_KEYS if image.info.get(key)), None)
    if isinstance(raw, bytes | bytearray):
        return bytes(raw).decode("utf-8", errors="replace")
    return fix_mojibake(raw) if isinstance(raw, str) else ""


def _xmp_values(pattern: re.Pattern[str], xmp: str) -> list[str]:
    """Every value of one XMP property, written as an attribute, an element, or an `rdf:resource`."""
    return [value.strip() for match in pattern.finditer(xmp) for value in match.groups() if value and value.strip()]


def xmp_remote_url(xmp: str) -> str | None:
    """The C2PA remote-manifest reference (XMP `dcterms:provenance`), if any."""
    return next(iter(_xmp_values(_XMP_REMOTE, xmp)), None)


def xmp_claims(xmp: str) -> list[str]:
    """IPTC DigitalSourceType codes, and a CreatorTool that names a known generator."""
    claims = [f"XMP DigitalSourceType: {short_source_type(v)} {UNSIGNED}" for v in _xmp_values(_XMP_SOURCE_TYPE, xmp)]
    claims += [_named("XMP CreatorTool", tool) for tool in _xmp_values(_XMP_CREATOR_TOOL, xmp) if known_generator(tool)]
    return claims


def known_generator(text: str) -> str | None:
    """The first known generator that `text` names (searched in its first 20,000 characters)."""
    head = text[:20_000]
    return next((name for name, pattern in KNOWN_GENERATORS if pattern.search(head)), None)


def _named(where: str, value: str) -> str:
    """`EXIF Software: Adobe Firefly (unsigned claim)`, with the raw value quoted where it says more."""
    name = known_generator(value) or value
    raw = " ".join(value.split())
    detail = "" if raw.lower() == name.lower() else f' ("{_excerpt(raw)}")'
    return f"{where}: {name}{detail} {UNSIGNED}"


def _excerpt(text: str, limit: int = 60) -> str:
    """One line, at most `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def a1111_detail(parameters: str) -> str:
    """` (model M; prompt "P")` from AUTOMATIC1111 parameters: the prompt is the text before its settings."""
    prompt = re.split(r"\nNegative prompt:|\nSteps:", parameters, maxsplit=1)[0].strip()
    model = _A1111_MODEL.search(parameters)
    parts = [f"model {model.group(1).strip()}" if model else "", f'prompt "{_excerpt(prompt)}"' if prompt else ""]
    shown = "; ".join(part for part in parts if part)
    return f" ({shown})" if shown else ""


def looks_like_a1111(text: str) -> bool:
    """AUTOMATIC1111's parameters: a settings line with `Steps:` and `Sampler:` (or a negative prompt)."""
    return "Steps:" in text and ("Sampler:" in text or "Negative prompt:" in text)


def comfyui_models(text: str) -> list[str] | None:
    """Checkpoint names in a ComfyUI prompt or workflow graph; None when the text is not one."""
    try:
        graph = json.loads(text)
    except ValueError:
        return None
    if isinstance(graph, dict) and isinstance(graph.get("nodes"), list):  # the UI workflow
        return []
    if not isinstance(graph, dict) or not any(isinstance(n, dict) and "class_type" in n for n in graph.values()):
        return None
    inputs = (node.get("inputs") or {} for node in graph.values() if isinstance(node, dict))
    names = (value for node in inputs for key, value in node.items() if key in ("ckpt_name", "unet_name"))
    return list(dict.fromkeys(str(name) for name in names))


def text_chunk_claims(image: Image.Image) -> list[str]:
    """Generator claims from PNG text chunks, one line per generator with the keys that name it."""
    found: dict[str, tuple[list[str], str]] = {}
    for key, value in image.info.items():
        if not isinstance(value, str) or key in _XMP_KEYS:
            continue
        generator, detail = _chunk_generator(key, fix_mojibake(value))
        if generator:
            found.setdefault(generator, ([], detail))[0].append(key)
    return [f"PNG {'/'.join(keys)}: {name}{detail} {UNSIGNED}" for name, (keys, detail) in found.items()]


def _chunk_generator(key: str, value: str) -> tuple[str | None, str]:
    """Which generator one text chunk points to, and a short detail (model, prompt)."""
    if key.lower() in ("prompt", "workflow"):
        models = comfyui_models(value)
        if models is not None:
            return "ComfyUI", f" (model {', '.join(models)})" if models else ""
    if key.lower() == "parameters" and looks_like_a1111(value):
        return "Stable Diffusion", a1111_detail(value)
    if key.lower() in _CHUNK_WRITERS:
        return _CHUNK_WRITERS[key.lower()], ""
    return known_generator(value), ""


def decode_user_comment(raw: object) -> str:
    """EXIF UserComment: an 8-byte charset prefix, then text (AUTOMATIC1111: `UNICODE\\0` + UTF-16)."""
    if isinstance(raw, str):
        return raw.rstrip("\0")
    if not isinstance(raw, bytes | bytearray):
        return ""
    prefix, body = bytes(raw[:8]), bytes(raw[8:])
    if prefix == b"UNICODE\0":
        if body[:2] in (b"\xff\xfe", b"\xfe\xff"):
            text = body.decode("utf-16", errors="replace")
        else:  # no byte-order mark: ASCII-heavy UTF-16 has its zero bytes on the high side
            little = body[1::2].count(0) > body[0::2].count(0)
            text = body.decode("utf-16-le" if little else "utf-16-be", errors="replace")
    elif prefix in (b"ASCII\0\0\0", b"\0" * 8):
        text = body.decode("utf-8", errors="replace")
    else:  # writers that leave out the prefix
        text = bytes(raw).decode("utf-8", errors="replace")
    return text.rstrip("\0")


def header_exif(image: Image.Image) -> Image.Exif:
    """EXIF from the header alone: `getexif()` on a PNG with no eXIf chunk before the pixels decodes the image."""
    if hasattr(image, "tag_v2"):  # TIFF: read from the tag directory, no pixels involved
        return image.getexif()
    exif = Image.Exif()
    if image.info.get("exif"):
        exif.load(image.info["exif"])
    return exif


def exif_claims(image: Image.Image) -> list[str]:
    """EXIF Software naming a known generator; a UserComment holding generator parameters or a generator's name."""
    exif = header_exif(image)
    claims: list[str] = []
    software = exif.get(EXIF_SOFTWARE)
    if isinstance(software, str) and known_generator(software):
        claims.append(_named("EXIF Software", software))
    comment = decode_user_comment(exif.get_ifd(EXIF_IFD).get(EXIF_USER_COMMENT))
    if looks_like_a1111(comment):
        claims.append(f"EXIF UserComment: Stable Diffusion{a1111_detail(comment)} {UNSIGNED}")
    elif known_generator(comment):
        claims.append(f"EXIF UserComment: {known_generator(comment)} {UNSIGNED}")
    return claims
