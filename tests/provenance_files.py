"""Files that carry provenance, made offline: a throwaway CA and end-entity certificate (cryptography), images
signed with c2pa-python, a tampered copy, XMP and PNG-text claims written with Pillow, and a plain photo.

Shared by tests/test_provenance.py (the reader) and tests/test_provenance_predict.py (prediction, evaluation
and the web demo); nothing here goes on the network.
"""

from __future__ import annotations

import datetime
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

AI = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
MANIFEST = {
    "claim_generator_info": [{"name": "test-generator", "version": "1.0"}],
    "title": "signed.jpg",
    "assertions": [
        {"label": "c2pa.actions", "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": AI}]}},
    ],
}
EMAIL_PROTECTION, DOCUMENT_SIGNING = "1.3.6.1.5.5.7.3.4", "1.3.6.1.5.5.7.3.36"
PROMPT = "a café in Zürich, 東京 at night"
A1111 = f"{PROMPT}\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Model: sd_xl_base_1.0"
A1111_CLAIM = f'Stable Diffusion (model sd_xl_base_1.0; prompt "{PROMPT}") (unsigned claim)'


def xmp_packet(body: str, attributes: str = "") -> bytes:
    """An XMP packet with one rdf:Description holding `attributes` and `body`."""
    return (
        '<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
        'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" xmlns:dcterms="http://purl.org/dc/terms/" '
        f'{attributes}>{body}</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    ).encode()


def image_bytes(fmt: str = "JPEG", size: tuple[int, int] = (64, 64), **save_args) -> bytes:
    """A small flat image in `fmt`, saved with Pillow's `save_args` (xmp=, exif=, pnginfo=)."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (90, 140, 60)).save(buffer, format=fmt, **save_args)
    return buffer.getvalue()


def picture(seed: int, size: tuple[int, int] = (96, 80)) -> Image.Image:
    """A photo-like image (smooth colours plus noise): different seeds give different pixel scores."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (size[1] // 8 + 2, size[0] // 8 + 2, 3), dtype=np.uint8))
    smooth = np.asarray(coarse.resize(size, Image.Resampling.BICUBIC), dtype=np.float32)
    return Image.fromarray(np.clip(smooth + rng.normal(0, 10, smooth.shape), 0, 255).astype(np.uint8))


def encode(image: Image.Image, fmt: str = "JPEG", **save_args) -> bytes:
    """`image` saved as `fmt` with Pillow's `save_args` (xmp=, exif=, pnginfo=)."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save_args)
    return buffer.getvalue()


# --- a throwaway PKI and signed files ---


@dataclass(frozen=True)
class Pki:
    ca_pem: bytes
    chain: bytes  # end-entity PEM, then CA PEM
    key: bytes


def _certificate(subject: str, issuer: str, public_key, eku_oid: str | None, issuer_key):
    """A 30-day certificate: a CA (`eku_oid` None: keyCertSign, cRLSign) or an end entity with one EKU."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    def name(text: str) -> x509.Name:
        common, org = text.split("/")
        return x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, common), x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)]
        )

    is_ca = eku_oid is None
    flags = dict.fromkeys(
        (
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    usage = x509.KeyUsage(digital_signature=not is_ca, key_cert_sign=is_ca, crl_sign=is_ca, **flags)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(subject))
        .issuer_name(name(issuer))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if not is_ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([x509.ObjectIdentifier(eku_oid)]), critical=False)
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key())
        builder = builder.add_extension(aki, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(eku_oid: str) -> Pki:
    """An EC P-256 root CA and an end-entity certificate it signs, with one extended key usage."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    ca_key, ee_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root = "Provenance Test Root CA/Provenance Test CA"
    ca = _certificate(root, root, ca_key.public_key(), None, ca_key)
    ee = _certificate("Test Signer/Test Signer Org", root, ee_key.public_key(), eku_oid, ca_key)
    pem = serialization.Encoding.PEM
    key = ee_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return Pki(ca.public_bytes(pem), ee.public_bytes(pem) + ca.public_bytes(pem), key)


def sign_jpeg(source: bytes, pki: Pki, remote_url: str | None = None, trust_config: str | None = None) -> bytes:
    """`source` with a C2PA manifest (c2pa.created, trainedAlgorithmicMedia), embedded or kept at `remote_url`."""
    c2pa = pytest.importorskip("c2pa")
    settings: dict = {"builder": {"thumbnail": {"enabled": False}}}
    if trust_config:  # signing validates the certificate too: an EKU outside c2pa's defaults needs the list
        settings["trust"] = {"trust_config": trust_config}
    info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, pki.chain, pki.key, None)
    with c2pa.Context(c2pa.Settings.from_dict(settings)) as context, c2pa.Signer.from_info(info) as signer:
        builder = c2pa.Builder(MANIFEST, context)
        if remote_url:
            builder.set_no_embed()
            builder.set_remote_url(remote_url)
        signed = io.BytesIO()
        builder.sign(signer, "image/jpeg", io.BytesIO(source), signed)
    return signed.getvalue()


def tamper(jpeg: bytes) -> bytes:
    """Change one byte of the compressed pixels (after the manifest, before EOI) so the data hash fails."""
    position = next(i for i in range(len(jpeg) - 3, 0, -1) if jpeg[i] < 0xF0 and jpeg[i - 1] != 0xFF)
    return jpeg[:position] + bytes([jpeg[position] + 1]) + jpeg[position + 1 :]


def png_with_parameters(how: str) -> bytes:
    """AUTOMATIC1111 parameters as the writers in the wild store them."""
    info = PngImagePlugin.PngInfo()
    if how == "utf8 tEXt":  # UTF-8 bytes in a latin-1 chunk: Pillow reads them back garbled
        info.add(b"tEXt", b"parameters\0" + A1111.encode("utf-8"))
    elif how == "iTXt":  # Pillow's add_text switches to iTXt for text latin-1 cannot hold
        info.add_text("parameters", A1111)
    return image_bytes("PNG", pnginfo=info)


# what `write_provenance_folder` writes: file -> the C2PA state it must read as, without trust anchors
FOLDER_STATES = {
    "signed_ai.jpg": "valid, untrusted signer",
    "tampered_ai.jpg": "invalid",
    "xmp_iptc.jpg": "none found",
    "parameters.png": "none found",
    "plain_photo.jpg": "none found",
}


def write_provenance_folder(folder: Path, pki: Pki) -> Path:
    """One file per provenance case, each a different photo-like picture: a C2PA-signed AI image, the same
    image tampered, an XMP IPTC-tagged JPEG, a PNG with AUTOMATIC1111 parameters, a plain photo; ca.pem
    (the test CA, for trust anchors) beside the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    signed = sign_jpeg(encode(picture(1), quality=92), pki)
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", A1111)
    files = {
        "signed_ai.jpg": signed,
        "tampered_ai.jpg": tamper(signed),
        "xmp_iptc.jpg": encode(picture(2), xmp=xmp_packet("", f'Iptc4xmpExt:DigitalSourceType="{AI}"')),
        "parameters.png": encode(picture(3), "PNG", pnginfo=info),
        "plain_photo.jpg": encode(picture(4), quality=92),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder.parent / "ca.pem").write_bytes(pki.ca_pem)
    return folder
