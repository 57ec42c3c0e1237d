"""Provenance: what an image file itself claims about its origin (C2PA manifests, unsigned metadata)."""

from modeling.provenance.report import Provenance, read_provenance

__all__ = ["Provenance", "read_provenance"]
