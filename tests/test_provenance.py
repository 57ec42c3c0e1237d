"""Provenance, offline: files signed here with a throwaway CA (c2pa-python), and metadata written with Pillow.

The keys, certificates and signed files are made once a session; nothing goes on the network (a remote
manifest points at a local listener that records any connection, and Python sockets are refused).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageFile, PngImagePlugin
from provenance_files import (
    A1111,
    A1111_CLAIM,
    AI,
    DOCUMENT_SIGNING,
    EMAIL_PROTECTION,
    Pki,
    image_bytes,
    make_pki,
    png_with_parameters,
    sign_jpeg,
    tamper,
    xmp_packet,
)

from modeling.provenance import Provenance, read_provenance
from modeling.provenance.claims import decode_user_comment
from modeling.provenance.credentials import NOT_CHECKED, _context, settings_dict, trust_config_text

# --- a throwaway PKI and signed files (tests/provenance_files.py), made once a session ---


@pytest.fixture(scope="session")
def pki() -> Pki:
    pytest.importorskip("cryptography")
    return make_pki(EMAIL_PROTECTION)


@pytest.fixture(scope="session")
def files(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Path:
    """signed.jpg, ca.pem and tampered.jpg, written once."""
    folder = tmp_path_factory.mktemp("provenance")
    signed = sign_jpeg(image_bytes(), pki)
    (folder / "signed.jpg").write_bytes(signed)
    (folder / "ca.pem").write_bytes(pki.ca_pem)
    (folder / "tampered.jpg").write_bytes(tamper(signed))
    return folder


@pytest.fixture(scope="session")
def listener() -> Iterator[tuple[str, list[bytes]]]:
    """A local HTTP address that records every request made to it (none may come)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    requests: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                continue
            with connection:
                connection.settimeout(1)
                requests.append(connection.recv(1024))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/manifest.c2pa", requests
    stop.set()
    thread.join()
    server.close()


@pytest.fixture
def no_python_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection from Python code fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("provenance reading tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# --- signed manifests ---


def test_signed_file_reads_valid_untrusted_with_its_claims(files: Path) -> None:
    provenance = read_provenance(files / "signed.jpg")
    assert provenance.c2pa_state == "valid, untrusted signer"
    assert (provenance.source_type, provenance.generator, provenance.signer) == (
        "trainedAlgorithmicMedia",
        "test-generator 1.0",
        "Test Signer Org",
    )
    assert provenance.status_codes == ("signingCredential.untrusted",)
    assert provenance.summary == (
        "Signed C2PA manifest says: made by a generative AI (trainedAlgorithmicMedia), "
        "generator test-generator 1.0, signer Test Signer Org, valid but untrusted signer"
    )


def test_the_test_ca_as_trust_anchor_makes_it_trusted(files: Path) -> None:
    provenance = read_provenance((files / "signed.jpg").read_bytes(), trust_anchors=files / "ca.pem")
    assert provenance.c2pa_state == "trusted"
    assert provenance.status_codes == ()
    assert provenance.summary.endswith("trusted signer") and "untrusted" not in provenance.summary


def test_tampered_file_reads_invalid_and_still_reports_its_claims(files: Path) -> None:
    provenance = read_provenance(files / "tampered.jpg", trust_anchors=files / "ca.pem")
    assert provenance.c2pa_state == "invalid"
    assert "assertion.dataHash.mismatch" in provenance.status_codes
    assert (provenance.source_type, provenance.generator, provenance.signer) == (
        "trainedAlgorithmicMedia",
        "test-generator 1.0",
        "Test Signer Org",
    )
    assert provenance.summary.startswith("Manifest invalid: the file was changed after signing")
    assert "it claims: made by a generative AI (trainedAlgorithmicMedia)" in provenance.summary


def test_document_signing_certificate_is_valid_with_the_shipped_eku_list() -> None:
    """Without trust.trust_config c2pa calls a documentSigning certificate invalid (signingCredential.invalid)."""
    pytest.importorskip("cryptography")
    signed = sign_jpeg(image_bytes(), make_pki(DOCUMENT_SIGNING), trust_config=trust_config_text())
    assert read_provenance(signed).c2pa_state == "valid, untrusted signer"


def test_remote_manifest_is_reported_and_never_fetched(pki: Pki, listener, no_python_sockets) -> None:
    url, requests = listener
    provenance = read_provenance(sign_jpeg(image_bytes(), pki, remote_url=url))
    assert (provenance.c2pa_state, provenance.remote_url) == ("remote (not fetched)", url)
    assert provenance.summary.startswith(f"C2PA manifest kept remotely at {url} (not fetched")
    assert requests == []


def test_xmp_remote_reference_without_a_manifest_is_reported_remote(listener, no_python_sockets) -> None:
    url, requests = listener
    provenance = read_provenance(image_bytes(xmp=xmp_packet("", f'dcterms:provenance="{url}"')))
    assert (provenance.c2pa_state, provenance.remote_url) == ("remote (not fetched)", url)
    assert requests == []


def test_settings_read_offline_with_the_eku_list() -> None:
    settings = settings_dict("PEM")
    assert settings["verify"] == {"ocsp_fetch": False, "remote_manifest_fetch": False}
    assert settings["trust"]["trust_anchors"] == "PEM"
    oids = settings["trust"]["trust_config"].split()
    assert {EMAIL_PROTECTION, DOCUMENT_SIGNING, "1.3.6.1.4.1.62558.2.1", "1.3.6.1.5.5.7.3.8"} <= set(oids)
    assert all(part.isdigit() for oid in oids for part in oid.split("."))  # comments stripped


def test_repeated_reads_reuse_one_context(files: Path) -> None:
    read_provenance(files / "signed.jpg")
    before = _context.cache_info()
    read_provenance(files / "signed.jpg")
    after = _context.cache_info()
    assert (after.misses, after.hits) == (before.misses, before.hits + 1)


@pytest.mark.parametrize("content, error", [(None, FileNotFoundError), (b"not a certificate", ValueError)])
def test_a_bad_trust_anchor_file_is_a_setup_error(files: Path, tmp_path: Path, content, error) -> None:
    anchors = tmp_path / "anchors.pem"
    if content is not None:
        anchors.write_bytes(content)
    with pytest.raises(error):
        read_provenance(files / "signed.jpg", trust_anchors=anchors)


# --- unsigned claims ---

XMP_FORMS = {
    "attribute": xmp_packet("", f'Iptc4xmpExt:DigitalSourceType="{AI}"'),
    "element": xmp_packet(f"<Iptc4xmpExt:DigitalSourceType>{AI}</Iptc4xmpExt:DigitalSourceType>"),
    "resource": xmp_packet(f'<Iptc4xmpExt:DigitalSourceType rdf:resource="{AI}"/>'),
}


@pytest.mark.parametrize("form", sorted(XMP_FORMS))
@pytest.mark.parametrize("fmt", ["JPEG", "WEBP", "PNG"])
def test_xmp_digital_source_type_is_an_unsigned_claim(fmt: str, form: str) -> None:
    if fmt == "PNG":  # Pillow 12 writes no XMP to PNG on its own: the iTXt chunk other tools write
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", XMP_FORMS[form].decode())
        data = image_bytes("PNG", pnginfo=info)
    else:
        data = image_bytes(fmt, xmp=XMP_FORMS[form])
    provenance = read_provenance(data)
    assert provenance.claims == ("XMP DigitalSourceType: trainedAlgorithmicMedia (unsigned claim)",)
    assert provenance.source_type is None  # the signed field stays empty: nothing was signed
    assert provenance.c2pa_state == "none found"
    assert provenance.summary.startswith("No C2PA manifest; unsigned metadata claims (anyone can write these): ")


@pytest.mark.parametrize("how", ["utf8 tEXt", "iTXt"])
def test_png_parameters_are_a_generator_claim_decoded_right(how: str) -> None:
    assert read_provenance(png_with_parameters(how)).claims == (f"PNG parameters: {A1111_CLAIM}",)


def test_latin1_png_text_stays_latin1() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "café\nSteps: 20, Sampler: Euler a")
    assert read_provenance(image_bytes("PNG", pnginfo=info)).claims == (
        'PNG parameters: Stable Diffusion (prompt "café") (unsigned claim)',
    )


@pytest.mark.parametrize(
    "chunks, claim",
    [
        (
            {
                "prompt": json.dumps(
                    {
                        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "flux1.safetensors"}},
                        "3": {"class_type": "KSampler", "inputs": {"seed": 1}},
                    }
                ),
                "workflow": json.dumps({"nodes": [{"id": 3, "type": "KSampler"}], "links": []}),
            },
            "PNG prompt/workflow: ComfyUI (model flux1.safetensors) (unsigned claim)",
        ),
        ({"Software": "NovelAI", "Source": "NovelAI Diffusion V3"}, "PNG Software/Source: NovelAI (unsigned claim)"),
        ({"invokeai_metadata": "{}"}, "PNG invokeai_metadata: InvokeAI (unsigned claim)"),
    ],
    ids=["comfyui", "novelai", "invokeai"],
)
def test_png_text_chunks_name_their_generator(chunks: dict, claim: str) -> None:
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    assert read_provenance(image_bytes("PNG", pnginfo=info)).claims == (claim,)


@pytest.mark.parametrize("fmt, encoding", [("JPEG", "utf-16-be"), ("JPEG", "utf-16-le"), ("WEBP", "utf-16-be")])
def test_exif_software_and_unicode_user_comment(fmt: str, encoding: str) -> None:
    exif = Image.Exif()
    exif[305] = "Adobe Firefly"
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + A1111.encode(encoding)
    assert read_provenance(image_bytes(fmt, exif=exif)).claims == (
        "EXIF Software: Adobe Firefly (unsigned claim)",
        f"EXIF UserComment: {A1111_CLAIM}",
    )


@pytest.mark.parametrize(
    "raw, text",
    [
        (b"ASCII\0\0\0made with Midjourney", "made with Midjourney"),
        (b"UNICODE\0\xff\xfeh\0i\0", "hi"),
        (b"\0" * 8 + "café".encode(), "café"),
        (None, ""),
    ],
)
def test_user_comment_charsets(raw: bytes | None, text: str) -> None:
    assert decode_user_comment(raw) == text


def test_software_that_names_no_generator_is_not_a_claim() -> None:
    exif = Image.Exif()
    exif[305] = "GIMP 2.10"
    assert read_provenance(image_bytes(exif=exif)).claims == ()


def test_metadata_is_read_without_decoding_pixels(monkeypatch: pytest.MonkeyPatch) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", A1111)
    exif = Image.Exif()
    exif[305] = "Adobe Firefly"
    images = [image_bytes("PNG", size=(256, 256), pnginfo=info), image_bytes("JPEG", size=(256, 256), exif=exif)]
    loads: list[object] = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: loads.append(self))
    assert [len(read_provenance(data).claims) for data in images] == [1, 1]
    assert loads == []


# --- no provenance, no c2pa, unreadable files ---


def test_a_plain_photo_has_none_found_and_is_never_called_real() -> None:
    provenance = read_provenance(image_bytes(exif=Image.Exif()))
    assert (provenance.c2pa_state, provenance.claims) == ("none found", ())
    assert provenance.summary == "No provenance found; absence says nothing: any re-save strips metadata"
    assert not any("real" in str(value).lower() for value in provenance.to_dict().values())


def test_to_dict_is_flat_and_prefixed(files: Path) -> None:
    row = read_provenance(files / "signed.jpg").to_dict()
    assert all(key.startswith("provenance_") for key in row)
    assert all(value is None or isinstance(value, str) for value in row.values())
    assert row["provenance_source_type"] == "trainedAlgorithmicMedia"
    assert row["provenance_status_codes"] == "signingCredential.untrusted"
    assert row["provenance_summary"] == read_provenance(files / "signed.jpg").summary


def test_without_c2pa_the_manifest_is_not_checked_and_claims_still_read(files: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "c2pa", None)  # `import c2pa` now raises ImportError
    signed = read_provenance(files / "signed.jpg")
    assert (signed.c2pa_state, signed.source_type) == (NOT_CHECKED, None)
    assert "pip install '.[provenance]'" in signed.summary and "absence says nothing" in signed.summary
    claimed = read_provenance(image_bytes(xmp=XMP_FORMS["attribute"]))
    assert claimed.c2pa_state == NOT_CHECKED
    assert claimed.claims == ("XMP DigitalSourceType: trainedAlgorithmicMedia (unsigned claim)",)
    assert not any("real" in str(value).lower() for value in signed.to_dict().values())


def test_the_package_imports_without_c2pa() -> None:
    code = (
        "import sys; sys.modules['c2pa'] = None\n"
        "from modeling.provenance import read_provenance\n"
        "print(read_provenance(sys.stdin.buffer.read()).c2pa_state)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        input=image_bytes(),
        capture_output=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert done.stdout.decode().strip() == NOT_CHECKED


@pytest.mark.parametrize(
    "image",
    [b"", b"not an image at all", b"\xff\xd8\xff", "missing.jpg", "."],
    ids=["empty", "text", "truncated-jpeg", "missing-path", "directory"],
)
def test_an_unreadable_file_gives_an_error_state(image: bytes | str, tmp_path: Path) -> None:
    provenance = read_provenance(image if isinstance(image, bytes) else tmp_path / image)
    assert isinstance(provenance, Provenance)
    assert provenance.c2pa_state.startswith("error: ")
    assert provenance.summary.startswith("Could not read provenance (")
