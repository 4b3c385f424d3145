"""An uploaded artifact: a tar of ``metadata.json`` and the model's files, unpacked for a publish.

Everything is checked before a byte is written (:func:`upload_members`): at most
:data:`MAX_MEMBERS` members, their expanded sizes (a sparse member's real size) within the upload
limit, ``metadata.json`` at most :data:`METADATA_LIMIT`; then only plain, non-sparse files with
checked plain names (no links, devices or folders) are written, into one folder. Problems raise
:class:`~deepvre.market.metadata.MetadataError` (422, every problem named) or
:class:`~deepvre.market.store.UploadTooLarge` (413).
"""

import json
import tarfile

from . import metadata
from .store import UploadTooLarge

# An upload's limits before anything is unpacked: members, and the size of metadata.json.
MAX_MEMBERS = 1000
METADATA_LIMIT = 1024 * 1024


def upload_members(archive, limit):
    """The members of an uploaded tar, checked before anything is written: at most
    :data:`MAX_MEMBERS`, their expanded sizes (a sparse member's real size) at most ``limit`` in
    all. Raises :class:`UploadTooLarge`."""
    members, total = [], 0
    for member in archive:
        members.append(member)
        total += max(member.size, 0)
        if len(members) > MAX_MEMBERS:
            raise UploadTooLarge(f"upload: more than {MAX_MEMBERS} members")
        if total > limit:
            raise UploadTooLarge(f"upload: its files expand past the limit of {limit} bytes")
        if member.name == "metadata.json" and member.size > METADATA_LIMIT:
            raise UploadTooLarge(f"upload: metadata.json is over {METADATA_LIMIT} bytes")
    return members


def unpack_upload(tar_path, folder, limit):
    """``(document, {name: path})`` from an uploaded tar; names, kinds and sizes are checked before
    anything is written (only plain, non-sparse files; no links or devices)."""
    try:
        archive = tarfile.open(tar_path, "r:")
    except tarfile.TarError as err:
        raise metadata.MetadataError([f"upload: not a tar archive ({err})"]) from None
    with archive:
        try:
            members = upload_members(archive, limit)
        except tarfile.TarError as err:
            raise metadata.MetadataError([f"upload: not a tar archive ({err})"]) from None
        plain = [m for m in members if m.isreg() and not m.issparse()]
        problems = [f"upload: {m.name!r} is not a regular file" for m in members if m not in plain]
        names = [m.name for m in plain]
        problems += metadata.check_file_names([n for n in names if n != "metadata.json"])
        if "metadata.json" not in names:
            problems.append("upload: metadata.json is missing")
        if len(set(names)) < len(names):
            problems.append("upload: a file name appears twice")
        if problems:
            raise metadata.MetadataError(problems)
        files = {}
        for member in members:
            target = folder / member.name  # a checked plain name: stays in folder
            with archive.extractfile(member) as src, open(target, "wb") as out:
                left = member.size
                while left > 0 and (chunk := src.read(min(1 << 20, left))):
                    out.write(chunk)
                    left -= len(chunk)
            files[member.name] = target
    try:
        document = json.loads(files.pop("metadata.json").read_text())
    except (ValueError, RecursionError) as err:
        raise metadata.MetadataError([f"metadata.json: not JSON ({err})"]) from None
    return document, files

