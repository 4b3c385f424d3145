"""Content-addressed artifact storage through fsspec.

A blob lives at ``<store>/sha256/<first two hex>/<full hex>``; its name is its checksum, so a
version's files can never change under it and identical files are stored once. The store is
any fsspec URL: a local folder (the default) or e.g. ``s3://bucket/prefix`` for S3-compatible
object stores (with ``s3fs`` installed).

Every read checks the checksum: :meth:`ArtifactStore.copy_to` and :meth:`ArtifactStore.iter_chunks`
raise :class:`IntegrityError` when the stored bytes no longer hash to their name.
"""

import concurrent.futures
import hashlib
import os
import re
import uuid

import fsspec

CHUNK = 1 << 20
COPY_CHUNK = 8 << 20  # large blocks for whole-file copies
DIGEST = re.compile(r"^[0-9a-f]{64}$")


class IntegrityError(IOError):
    """Stored bytes that do not match their sha256 name: the artifact was changed or damaged."""


class ArtifactStore:
    """Blobs named by their sha256 under ``url`` (a folder path or any fsspec URL)."""

    def __init__(self, url):
        self.url = str(url)
        self.fs, self.root = fsspec.core.url_to_fs(self.url)
        self.local = "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,))
        self.fs.makedirs(self.root, exist_ok=True)

    def path(self, digest):
        if not DIGEST.match(digest or ""):
            raise ValueError(f"not a sha256 digest: {digest!r}")
        return f"{self.root}/sha256/{digest[:2]}/{digest}"

    def exists(self, digest):
        return self.fs.exists(self.path(digest))

    def put_file(self, local_path, limit=None):
        """Store a local file; returns ``(sha256, size)``. ``limit``: refuse files larger than that."""
        with open(local_path, "rb") as src:
            return self.put_stream(src, limit=limit)

    def put_stream(self, src, limit=None):
        """Store the bytes read from ``src``; returns ``(sha256, size)``.

        Bytes go to a temporary name first and are moved into place only once complete, so a
        failed upload leaves no blob behind under a checksum name.
        """
        tmp = f"{self.root}/tmp/{uuid.uuid4().hex}"
        self.fs.makedirs(f"{self.root}/tmp", exist_ok=True)
        sha, size = hashlib.sha256(), 0
        try:
            with self.fs.open(tmp, "wb") as out:
                while chunk := src.read(CHUNK):
                    size += len(chunk)
                    if limit is not None and size > limit:
                        raise UploadTooLarge(f"upload larger than the limit of {limit} bytes")
                    sha.update(chunk)
                    out.write(chunk)
            digest = sha.hexdigest()
            final = self.path(digest)
            if self.fs.exists(final):
                self.fs.rm(tmp)
            else:
                self.fs.makedirs(os.path.dirname(final), exist_ok=True)
                self.fs.mv(tmp, final)
        except BaseException:
            if self.fs.exists(tmp):
                self.fs.rm(tmp)
            raise
        return digest, size

    def iter_chunks(self, digest, chunk=CHUNK):
        """Yield the blob's bytes; the LAST chunk is only yielded once the checksum matched.

        A consumer that streams chunks on (an HTTP download) therefore never delivers a complete
        tampered file: it gets :class:`IntegrityError` instead of the final bytes.
        """
        sha, held = hashlib.sha256(), None
        try:
            src = self.fs.open(self.path(digest), "rb")
        except FileNotFoundError:
            raise IntegrityError(f"artifact {digest} is missing from the store") from None
        with src:
            while data := src.read(chunk):
                sha.update(data)
                if held is not None:
                    yield held
                held = data
        if sha.hexdigest() != digest:
            raise IntegrityError(f"artifact {digest} is corrupt: its bytes hash to {sha.hexdigest()}")
        if held is not None:
            yield held

    def copy_to(self, digest, dest):
        """Copy the blob to the local file ``dest``, checking it; no file is left on a mismatch.

        One pass over the bytes: each large block is hashed in a second thread while it is written
        (hashlib releases the GIL), so a pull costs about a plain copy plus little.
        """
        tmp = f"{dest}.part-{uuid.uuid4().hex[:8]}"
        try:
            with open(tmp, "wb") as out:
                if self.local:
                    self._copy_local(digest, out)
                else:
                    for data in self.iter_chunks(digest, chunk=COPY_CHUNK):
                        out.write(data)
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return dest

    def _copy_local(self, digest, out):
        sha, buf = hashlib.sha256(), bytearray(COPY_CHUNK)
        try:
            src = open(self.path(digest), "rb", buffering=0)
        except FileNotFoundError:
            raise IntegrityError(f"artifact {digest} is missing from the store") from None
        with src, concurrent.futures.ThreadPoolExecutor(1) as hasher:
            while size := src.readinto(buf):
                block = memoryview(buf)[:size]
                hashed = hasher.submit(sha.update, block)
                out.write(block)
                hashed.result()  # before the buffer is refilled
        if sha.hexdigest() != digest:
            raise IntegrityError(f"artifact {digest} is corrupt: its bytes hash to {sha.hexdigest()}")

    def read_bytes(self, digest):
        return b"".join(self.iter_chunks(digest))


class UploadTooLarge(ValueError):
    """An upload over the configured size limit."""
