"""Content-addressed artifact storage through fsspec.

A blob lives at ``<store>/sha256/<first two hex>/<full hex>``; its name is its checksum, so a
version's files can never change under it and identical files are stored once. The store is
any fsspec URL: a local folder (the default) or e.g. ``s3://bucket/prefix`` for S3-compatible
object stores (with ``s3fs`` installed).

Every read checks the bytes: :meth:`ArtifactStore.copy_to` and :meth:`ArtifactStore.iter_chunks`
raise :class:`IntegrityError` when they no longer match. sha256 stays the name; a publish also
records each blob's BLAKE3 digest (in the index, the trusted record), and reads check that one by
default (``verify="blake3"``: cryptographic too, about 4x faster than sha256 here, which capped a
pull at ~20 % of a plain copy). ``verify="sha256"`` re-hashes the full name (``deepvre market
fsck``, ``pull --verify sha256``); a blob recorded without a BLAKE3 digest is checked with sha256.

Crash safety: a blob's bytes are written to a temporary file, flushed to disk (fsync) and renamed
to their checksum name, so a blob name never holds partial bytes. Temporary files live in a
:class:`Staging` folder under ``<store>/tmp`` (an upload, a blob being written), which its writer
holds locked (``flock``) while it lives; :meth:`ArtifactStore.recover` removes those left by a
killed writer (the service calls it at start).
"""

import concurrent.futures
import errno
import fcntl
import hashlib
import os
import re
import shutil
import tempfile
import time
import typing
import uuid
from pathlib import Path

import blake3
import fsspec

from ..errors import TooLarge

CHUNK = 1 << 20
COPY_CHUNK = 8 << 20  # large blocks for whole-file copies
HASH_CHUNK = 1 << 20  # small enough to stay in the CPU cache between read and hash
NO_KERNEL_COPY = (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM)
DIGEST = re.compile(r"^[0-9a-f]{64}$")
VERIFY = ("blake3", "sha256")


class Blob(typing.NamedTuple):
    """A stored blob: its sha256 (the name), size in bytes and BLAKE3 digest."""

    sha256: str
    size: int
    blake3: str


def checker(digest, blake3_digest=None, verify="blake3"):
    """``(hasher, expected hex digest, algorithm)`` for reading blob ``digest``.

    ``verify="blake3"`` checks the recorded BLAKE3 digest, or sha256 where none was recorded;
    ``verify="sha256"`` always re-hashes the sha256 name.
    """
    if verify not in VERIFY:
        raise ValueError(f"verify: {verify!r} is not one of {', '.join(VERIFY)}")
    if verify == "blake3" and blake3_digest:
        return blake3.blake3(), blake3_digest, "blake3"
    return hashlib.sha256(), digest, "sha256"


def _corrupt(digest, hasher, algorithm):
    return IntegrityError(f"artifact {digest} is corrupt: its bytes hash to {algorithm} {hasher.hexdigest()}, "
                          f"not the recorded digest")


class IntegrityError(IOError):
    """Stored bytes that do not match their sha256 name: the artifact was changed or damaged."""


class Staging:
    """A private folder for one writer's temporary files, locked (``flock``) while it is open.

    It is made under a ``.new-`` name, locked, then renamed, so that a folder under its final name
    is either locked by a live writer or left by a dead one (:func:`leftovers`).
    """

    def __init__(self, parent):
        os.makedirs(parent, exist_ok=True)
        new = tempfile.mkdtemp(prefix=".new-", dir=parent)
        self._fd = os.open(new, os.O_RDONLY)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        self.path = Path(parent) / os.path.basename(new)[len(".new-"):]
        os.rename(new, self.path)

    def close(self):
        if self._fd is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def leftovers(parent, grace=3600):
    """Entries of staging folder ``parent`` that no live writer holds (``.new-`` ones: only when
    older than ``grace`` seconds, as one is renamed a moment after it is made)."""
    found = []
    for entry in sorted(os.listdir(parent)) if os.path.isdir(parent) else []:
        path = os.path.join(parent, entry)
        try:
            if entry.startswith(".new-"):
                if time.time() - os.lstat(path).st_mtime > grace:
                    found.append(path)
                continue
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:  # gone meanwhile
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            found.append(path)
        except BlockingIOError:
            pass  # a live writer holds it
        finally:
            os.close(fd)
    return found


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ArtifactStore:
    """Blobs named by their sha256 under ``url`` (a folder path or any fsspec URL)."""

    def __init__(self, url):
        self.url = str(url)
        self.fs, self.root = fsspec.core.url_to_fs(self.url)
        self.local = "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,))
        self.fs.makedirs(self.root, exist_ok=True)
        # local temporary files: in the store itself (same file system: a rename moves a blob into
        # place), else in the machine's temporary folder
        self.staging_root = f"{self.root}/tmp" if self.local else os.path.join(tempfile.gettempdir(), "deepvre-market")

    def staging(self):
        """A new :class:`Staging` folder for temporary files (close it when done)."""
        return Staging(self.staging_root)

    def leftovers(self):
        """Temporary files of writers that died (a killed publish): paths, none in use."""
        return leftovers(self.staging_root) + self._stale_remote()

    def _stale_remote(self):
        """An object store's temporary blobs older than a day (no locks there)."""
        if self.local:
            return []
        names = self.fs.glob(f"{self.root}/tmp/*")
        return [n for n in names if (t := os.path.basename(n).split("-")[0]).isdigit() and time.time() - int(t) > 86400]

    def recover(self):
        """Remove what killed writers left (see :meth:`leftovers`); returns the paths removed."""
        found = leftovers(self.staging_root)
        for path in found:
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.remove(path)
        stale = self._stale_remote()
        for path in stale:
            self.fs.rm(path)
        return found + stale

    def digests(self):
        """Every stored blob's name (sha256)."""
        names = self.fs.glob(f"{self.root}/sha256/*/*")
        return sorted(os.path.basename(n) for n in names if DIGEST.fullmatch(os.path.basename(n)))

    def path(self, digest):
        if not DIGEST.fullmatch(digest or ""):
            raise ValueError(f"not a sha256 digest: {digest!r}")
        return f"{self.root}/sha256/{digest[:2]}/{digest}"

    def exists(self, digest):
        return self.fs.exists(self.path(digest))

    def put_file(self, local_path, limit=None):
        """Store a local file; returns its :class:`Blob`. ``limit``: refuse files larger than that."""
        with open(local_path, "rb") as src:
            return self.put_stream(src, limit=limit)

    def put_stream(self, src, limit=None):
        """Store the bytes read from ``src``; returns its :class:`Blob` (sha256, size, blake3).

        Bytes go to a temporary name first and are moved into place only once complete (and, in
        a local store, on disk: fsync), so a failed or killed upload leaves no blob behind under a
        checksum name.
        """
        if self.local:
            with self.staging() as staging:
                return self._put(src, str(staging.path / "blob"), limit)
        # an object store: no locks; the name says when it was made, for whoever cleans up
        return self._put(src, f"{self.root}/tmp/{int(time.time())}-{uuid.uuid4().hex}", limit)

    def _put(self, src, tmp, limit):
        sha, fast, size = hashlib.sha256(), blake3.blake3(), 0
        try:
            with open(tmp, "wb") if self.local else self.fs.open(tmp, "wb") as out:
                while chunk := src.read(CHUNK):
                    size += len(chunk)
                    if limit is not None and size > limit:
                        raise UploadTooLarge(f"upload larger than the limit of {limit} bytes")
                    sha.update(chunk)
                    fast.update(chunk)
                    out.write(chunk)
                if self.local:
                    out.flush()
                    os.fsync(out.fileno())
            digest = sha.hexdigest()
            final = self.path(digest)
            if self.fs.exists(final):
                self.fs.rm(tmp)
            elif self.local:
                folder = os.path.dirname(final)
                if not os.path.isdir(folder):
                    os.makedirs(folder, exist_ok=True)
                    _fsync_dir(os.path.dirname(folder))
                os.rename(tmp, final)
                _fsync_dir(folder)  # the new name is on disk too
            else:
                self.fs.makedirs(os.path.dirname(final), exist_ok=True)
                self.fs.mv(tmp, final)
        except BaseException:
            if self.fs.exists(tmp):
                self.fs.rm(tmp)
            raise
        return Blob(digest, size, fast.hexdigest())

    def iter_chunks(self, digest, chunk=CHUNK, blake3_digest=None, verify="blake3"):
        """Yield the blob's bytes; the LAST chunk is only yielded once the digest matched
        (``blake3_digest``/``verify``: see :func:`checker`).

        A consumer that streams chunks on (an HTTP download) therefore never delivers a complete
        tampered file: it gets :class:`IntegrityError` instead of the final bytes.
        """
        hasher, expected, algorithm = checker(digest, blake3_digest, verify)
        held = None
        try:
            src = self.fs.open(self.path(digest), "rb")
        except FileNotFoundError:
            raise IntegrityError(f"artifact {digest} is missing from the store") from None
        with src:
            while data := src.read(chunk):
                hasher.update(data)
                if held is not None:
                    yield held
                held = data
        if hasher.hexdigest() != expected:
            raise _corrupt(digest, hasher, algorithm)
        if held is not None:
            yield held

    def copy_to(self, digest, dest, blake3_digest=None, verify="blake3"):
        """Copy the blob to the local file ``dest``, checking it; no file is left on a mismatch.

        A local store copies inside the kernel while the bytes are hashed in parallel (see
        :meth:`_copy_local`), so a pull costs about a plain copy.
        """
        check = (blake3_digest, verify)
        tmp = f"{dest}.part-{uuid.uuid4().hex[:8]}"
        try:
            with open(tmp, "wb") as out:
                if self.local:
                    self._copy_local(digest, out, *check)
                else:
                    for data in self.iter_chunks(digest, COPY_CHUNK, *check):
                        out.write(data)
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return dest

    def _copy_local(self, digest, out, blake3_digest, verify):
        """The kernel copies the blob into ``out`` while this thread hashes the same bytes.

        No byte of the copy passes through Python (``copy_file_range``); the hash reads the
        source in blocks small enough to stay in the CPU cache. The blob's inode, size and times
        are compared before and after, so bytes changed during the copy are caught too.
        """
        hasher, expected, algorithm = checker(digest, blake3_digest, verify)
        try:
            src = open(self.path(digest), "rb", buffering=0)
        except FileNotFoundError:
            raise IntegrityError(f"artifact {digest} is missing from the store") from None
        with src, concurrent.futures.ThreadPoolExecutor(1) as thread:
            before = _identity(src.fileno())
            copying = thread.submit(kernel_copy, src.fileno(), out.fileno(), before[1])
            try:
                hashed = _hash_fd(hasher, src.fileno(), before[1])
            finally:
                copied = copying.result()
            after = _identity(src.fileno())
        if before != after or not before[1] == hashed == copied:
            raise IntegrityError(f"artifact {digest} changed while it was copied")
        if hasher.hexdigest() != expected:
            raise _corrupt(digest, hasher, algorithm)

    def read_bytes(self, digest, verify="sha256"):
        return b"".join(self.iter_chunks(digest, verify=verify))


def _identity(fd):
    st = os.fstat(fd)
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _hash_fd(hasher, fd, size):
    """Feed the first ``size`` bytes of ``fd`` to ``hasher``; returns how many were read."""
    buf, done = bytearray(HASH_CHUNK), 0
    while done < size and (n := os.preadv(fd, [buf], done)):
        hasher.update(memoryview(buf)[: min(n, size - done)])
        done += min(n, size - done)
    return done


def kernel_copy(src_fd, dst_fd, size):
    """Copy the first ``size`` bytes of ``src_fd`` to the same offsets of ``dst_fd``; returns
    the bytes copied (fewer if the source is shorter).

    ``copy_file_range`` keeps the bytes in the kernel (and may share blocks on btrfs or XFS);
    where the file systems cannot do it, a pread/pwrite loop takes over.
    """
    done = 0
    try:
        if not hasattr(os, "copy_file_range"):  # not Linux
            raise OSError(errno.ENOSYS, "no copy_file_range")
        while done < size and (n := os.copy_file_range(src_fd, dst_fd, size - done, done, done)):
            done += n
        return done
    except OSError as error:
        if error.errno not in NO_KERNEL_COPY:
            raise
    buf = bytearray(COPY_CHUNK)
    while done < size and (n := os.preadv(src_fd, [buf], done)):
        n, written = min(n, size - done), 0
        while written < n:
            written += os.pwrite(dst_fd, memoryview(buf)[written:n], done + written)
        done += n
    return done


class UploadTooLarge(TooLarge):
    """An upload over the configured size limit (413)."""
