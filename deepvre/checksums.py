"""File checksums shared by the runs, the catalog and the converted base models."""

import hashlib


def file_sha256(path):
    """Hex sha256 of a file's bytes, read in blocks."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
