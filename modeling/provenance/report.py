"""One provenance result per file: the signed C2PA manifest and the unsigned claims, with a plain reading.

Provenance is reported beside the detector's pixel verdict and never changes it. Absence of provenance
is "none found", never evidence that an image is a camera photo: any re-save through an editor, a
social network or Pillow drops the metadata and the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modeling.provenance.claims import UNSIGNED, read_metadata
from modeling.provenance.credentials import (
    INVALID,
    NONE_FOUND,
    NOT_CHECKED,
    REMOTE,
    TRUSTED,
    UNSUPPORTED,
    VALID_UNTRUSTED,
    load_trust_anchors,
    read_credentials,
)

# IPTC digital source type (short code) -> what it says about the image, for the summary line
SOURCE_TYPE_MEANINGS = {
    "trainedAlgorithmicMedia": "made by a generative AI",
    "compositeWithTrainedAlgorithmicMedia": "a composite that includes generative-AI content",
    "algorithmicMedia": "made by an algorithm without training data",
    "algorithmicallyEnhanced": "a capture enhanced by an algorithm",
    "compositeSynthetic": "a composite that includes synthetic elements",
    "composite": "a composite of several sources",
    "compositeCapture": "a composite of several captures",
    "digitalCapture": "captured by a digital camera",
    "computationalCapture": "captured by a camera with computational processing",
    "negativeFilm": "a scan of a film negative",
    "positiveFilm": "a scan of positive film",
    "print": "a scan of a print",
    "digitalArt": "digital art made by a person",
    "humanEdits": "edited by a person",
    "minorHumanEdits": "minor edits by a person",
    "virtualRecording": "a recording of a virtual scene",
    "screenCapture": "a screen capture",
}
# status-code prefix -> why a manifest is invalid, first match wins
_INVALID_REASONS = (
    ("assertion.dataHash.mismatch", "the file was changed after signing"),
    ("assertion.boxesHash.mismatch", "the file was changed after signing"),
    ("assertion.bmffHash.mismatch", "the file was changed after signing"),
    ("assertion.", "the manifest's assertions do not match their hashes"),
    ("claimSignature.", "the claim signature does not verify"),
    ("signingCredential.", "the signing certificate is not acceptable"),
)
NO_PROVENANCE = "No provenance found; absence says nothing: any re-save strips metadata"


@dataclass(frozen=True)
class Provenance:
    """What a file claims about its origin: the C2PA manifest's claims with their state, and unsigned claims.

    `source_type`, `generator` and `signer` come from the C2PA manifest only, whatever `c2pa_state` says
    of it; metadata anyone can write is in `claims`, each labelled "(unsigned claim)".
    """

    c2pa_state: str
    source_type: str | None = None
    generator: str | None = None
    signer: str | None = None
    claims: tuple[str, ...] = ()
    status_codes: tuple[str, ...] = ()
    remote_url: str | None = None

    @property
    def summary(self) -> str:
        """One line that says what the file claims and how far the claim can be believed."""
        return summarize(self)

    def to_dict(self) -> dict[str, str | None]:
        """Flat columns for a predictions CSV, every key prefixed `provenance_`; lists joined with "; "."""
        return {
            "provenance_c2pa_state": self.c2pa_state,
            "provenance_source_type": self.source_type,
            "provenance_generator": self.generator,
            "provenance_signer": self.signer,
            "provenance_status_codes": "; ".join(self.status_codes),
            "provenance_remote_url": self.remote_url,
            "provenance_claims": "; ".join(self.claims),
            "provenance_summary": self.summary,
        }


def read_provenance(image: str | Path | bytes, trust_anchors: str | Path | None = None) -> Provenance:
    """Read what an image file (a path or its bytes) claims about its origin, offline, without decoding pixels.

    `trust_anchors` is a PEM file of root certificates whose signers count as trusted; without it a
    correct signature reads "valid, untrusted signer". A file that cannot be read gives an "error: ..."
    state; a missing or malformed `trust_anchors` file raises, since it is a setup mistake.
    """
    anchors = load_trust_anchors(trust_anchors)
    if isinstance(image, bytes | bytearray | memoryview):
        data = bytes(image)
    else:
        try:
            data = Path(image).read_bytes()
        except OSError as error:
            return Provenance(f"error: cannot read the file ({error})")
    metadata = read_metadata(data)
    credentials = read_credentials(data, metadata.mime, anchors, metadata.remote_url)
    state = credentials.state
    if metadata.error and (state in (NONE_FOUND, NOT_CHECKED, UNSUPPORTED) or state.startswith("error")):
        state = f"error: not a readable image ({metadata.error})"
    return Provenance(
        c2pa_state=state,
        source_type=credentials.source_type,
        generator=credentials.generator,
        signer=credentials.signer,
        claims=metadata.claims,
        status_codes=credentials.status_codes,
        remote_url=credentials.remote_url,
    )


def describe_source_type(code: str | None) -> str:
    """`made by a generative AI (trainedAlgorithmicMedia)`; a code outside the list is shown as it is."""
    if not code:
        return "no digital source type stated"
    return f"{SOURCE_TYPE_MEANINGS[code]} ({code})" if code in SOURCE_TYPE_MEANINGS else f"source type {code}"


def _signed_claims(provenance: Provenance) -> str:
    """`made by a generative AI (trainedAlgorithmicMedia), generator G, signer S`."""
    parts = [describe_source_type(provenance.source_type)]
    parts += [f"generator {provenance.generator}"] if provenance.generator else []
    parts += [f"signer {provenance.signer}"] if provenance.signer else []
    return ", ".join(parts)


def invalid_reason(codes: tuple[str, ...]) -> str:
    """Why validation failed, in words, from the first status code that explains it."""
    for prefix, reason in _INVALID_REASONS:
        matching = [code for code in codes if code.startswith(prefix) and code != "signingCredential.untrusted"]
        if matching:
            return f"{reason} ({', '.join(matching)})"
    return f"validation failed ({', '.join(codes) or 'no status code'})"


def _c2pa_sentence(provenance: Provenance) -> str:
    """The C2PA half of the summary; empty when there is nothing to say about a manifest."""
    state = provenance.c2pa_state
    if state in (TRUSTED, VALID_UNTRUSTED):
        trust = "trusted signer" if state == TRUSTED else "valid but untrusted signer"
        return f"Signed C2PA manifest says: {_signed_claims(provenance)}, {trust}"
    if state == INVALID:
        return f"Manifest invalid: {invalid_reason(provenance.status_codes)}; it claims: {_signed_claims(provenance)}"
    if state == REMOTE:
        return f"C2PA manifest kept remotely at {provenance.remote_url or 'an unstated address'} (not fetched: offline)"
    if state == NONE_FOUND:
        return "No C2PA manifest" if provenance.claims else ""
    return f"C2PA {state}"


def _unsigned_phrase(claim: str) -> str:
    """A claim for the summary line: the label dropped, an IPTC code given its meaning."""
    phrase = claim.replace(f" {UNSIGNED}", "")
    code = phrase.rpartition("DigitalSourceType: ")[2] if "DigitalSourceType: " in phrase else None
    return f"{phrase} ({SOURCE_TYPE_MEANINGS[code]})" if code in SOURCE_TYPE_MEANINGS else phrase


def summarize(provenance: Provenance) -> str:
    """The summary line: signed claims first, then unsigned ones, and what an empty result means."""
    if provenance.c2pa_state.startswith("error"):
        return f"Could not read provenance ({provenance.c2pa_state.removeprefix('error: ')})"
    c2pa = _c2pa_sentence(provenance)
    if provenance.claims:
        unsigned = [_unsigned_phrase(claim) for claim in provenance.claims]
        claims = f"unsigned metadata claims (anyone can write these): {'; '.join(unsigned)}"
    elif not c2pa:
        return NO_PROVENANCE
    elif provenance.c2pa_state in (NOT_CHECKED, UNSUPPORTED):
        claims = "no unsigned claims either; absence says nothing: any re-save strips metadata"
    else:
        claims = ""
    return "; ".join(part for part in (c2pa, claims) if part)
