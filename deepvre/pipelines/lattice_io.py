"""Gauge-configuration files: deepvre's own format and ILDG (LIME) reading and writing.

Array contract (shared with ``deepvre.science.lattice``):

* U(1): float64 link angles, shape ``(D, *dims)``; 2D: ``(2, L, L)`` = (direction, x, t).
* SU(N): complex128 link matrices, shape ``(D, *dims, N, N)``.
  Dimensions are ordered x, y, z, ..., t (time last); direction ``mu`` follows the same order.

deepvre gauge format, version 1 (``.dvgauge``), little-endian::

    8 bytes   magic b"DVGAUGE\\0"
    4 bytes   uint32 header length H
    H bytes   UTF-8 JSON header: {"format": "deepvre-gauge", "version": 1, "group": "U1"|"SU2"|"SU3"|...,
              "dims": [...], "shape": [...], "dtype": "<f8"|"<c16", "sha256": <of the payload>,
              "metadata": {...free JSON: beta, trajectory, generator, ...}}
    rest      the array, C order, dtype as stated

ILDG (``.lime``): LIME records (144-byte header: magic 0x456789ab, version 1, MB/ME
flags, 64-bit length, 128-byte type; payload padded to 8 bytes), with an
``ildg-format`` XML record and an ``ildg-binary-data`` record of big-endian float64
complex links, site order t slowest, x fastest, then direction mu, then the N x N matrix
row-major. ILDG defines ``su3gauge``; the same layout with ``su2gauge`` or ``u1gauge``
(1 x 1 matrices ``exp(i theta)``) is written for other groups.
"""

import hashlib
import json
import re
import struct

import numpy as np

from ..errors import Invalid

MAGIC = b"DVGAUGE\0"
VERSION = 1
LIME_MAGIC = 0x456789AB
LIME_HEADER = struct.Struct(">IHHQ128s")  # magic, version, flags, length, type
ILDG_NS = "http://www.lqcd.org/ildg"


class GaugeFormatError(Invalid):
    """A file that is not a valid configuration (names the file and what is wrong)."""


def group_of(links):
    """``U1`` for a real angle array, ``SU<N>`` for complex matrices."""
    links = np.asarray(links)
    if np.isrealobj(links):
        return "U1"
    if links.ndim < 4 or links.shape[-1] != links.shape[-2]:
        raise ValueError(f"SU(N) links must have shape (D, *dims, N, N), not {links.shape}")
    return f"SU{links.shape[-1]}"


def lattice_dims(links):
    links = np.asarray(links)
    dims = links.shape[1:] if np.isrealobj(links) else links.shape[1:-2]
    if links.shape[0] != len(dims):
        raise ValueError(f"links of shape {links.shape}: {links.shape[0]} directions for {len(dims)} dimensions")
    return list(dims)


# --- deepvre format -------------------------------------------------------------------------

def write_deepvre(path, links, metadata=None):
    """Write ``links`` (see the array contract) with JSON ``metadata`` in deepvre's format."""
    links = np.asarray(links)
    group = group_of(links)
    array = np.ascontiguousarray(links, dtype="<f8" if group == "U1" else "<c16")
    payload = array.tobytes()
    header = json.dumps({
        "format": "deepvre-gauge", "version": VERSION, "group": group, "dims": lattice_dims(links),
        "shape": list(array.shape), "dtype": array.dtype.str, "sha256": hashlib.sha256(payload).hexdigest(),
        "metadata": metadata or {},
    }, sort_keys=True).encode()
    with open(path, "wb") as f:
        f.write(MAGIC + struct.pack("<I", len(header)) + header + payload)


def read_deepvre(path):
    """``(links, header)`` from a deepvre file; GaugeFormatError if it is damaged."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != MAGIC:
        raise GaugeFormatError(f"{path}: not a deepvre gauge file (bad magic)")
    (length,) = struct.unpack("<I", data[8:12])
    try:
        header = json.loads(data[12:12 + length])
    except ValueError as err:
        raise GaugeFormatError(f"{path}: header is not JSON ({err})") from None
    if header.get("version") != VERSION:
        raise GaugeFormatError(f"{path}: format version {header.get('version')} (this reader knows {VERSION})")
    payload = data[12 + length:]
    if hashlib.sha256(payload).hexdigest() != header["sha256"]:
        raise GaugeFormatError(f"{path}: payload checksum mismatch (truncated or corrupt)")
    dtype = np.dtype(header["dtype"])
    if dtype.str not in ("<f8", "<c16"):
        raise GaugeFormatError(f"{path}: dtype {header['dtype']} not allowed")
    links = np.frombuffer(payload, dtype=dtype).reshape(header["shape"]).copy()
    return links, header


# --- LIME / ILDG ----------------------------------------------------------------------------

def write_lime(path, records):
    """Write LIME ``records`` (a list of ``(type, bytes)``) as one message."""
    with open(path, "wb") as f:
        for i, (kind, data) in enumerate(records):
            flags = (0x8000 if i == 0 else 0) | (0x4000 if i == len(records) - 1 else 0)
            f.write(LIME_HEADER.pack(LIME_MAGIC, 1, flags, len(data), kind.encode().ljust(128, b"\0")))
            f.write(data + b"\0" * (-len(data) % 8))


def read_lime(path):
    """The LIME records of a file as a list of ``(type, bytes)``."""
    records = []
    with open(path, "rb") as f:
        while True:
            head = f.read(LIME_HEADER.size)
            if not head:
                return records
            if len(head) < LIME_HEADER.size:
                raise GaugeFormatError(f"{path}: truncated LIME header")
            magic, version, _flags, length, kind = LIME_HEADER.unpack(head)
            if magic != LIME_MAGIC:
                raise GaugeFormatError(f"{path}: bad LIME magic {magic:#x}")
            data = f.read(length)
            if len(data) < length:
                name = kind.rstrip(b"\0").decode(errors="replace")
                raise GaugeFormatError(f"{path}: LIME record {name!r} truncated")
            f.read(-length % 8)
            records.append((kind.rstrip(b"\0").decode(), data))


def ildg_format_xml(field, dims):
    """The ``ildg-format`` record for a lattice of ``dims`` (x, y, z, t order)."""
    names = ["lx", "ly", "lz", "lt"] if len(dims) == 4 else [f"l{i}" for i in range(len(dims) - 1)] + ["lt"]
    if len(dims) == 2:
        names = ["lx", "lt"]
    sizes = "".join(f"<{n}>{d}</{n}>" for n, d in zip(names, dims))
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<ildgFormat xmlns="{ILDG_NS}">'
            f"<version>1.0</version><field>{field}</field><precision>64</precision>{sizes}</ildgFormat>")


def write_ildg(path, links, metadata=None):
    """Write ``links`` as ILDG: ``ildg-format`` XML + big-endian float64 ``ildg-binary-data``."""
    links = np.asarray(links)
    group = group_of(links)
    dims = lattice_dims(links)
    matrices = np.exp(1j * links)[..., None, None] if group == "U1" else links
    d = len(dims)
    # (mu, x, y, .., t, N, N) -> (t, .., y, x, mu, N, N): t slowest, x fastest, then mu
    ordered = np.transpose(matrices, tuple(range(d, 0, -1)) + (0, d + 1, d + 2))
    records = [("ildg-format", ildg_format_xml(f"{group.lower()}gauge", dims).encode())]
    if metadata:
        records.append(("deepvre-metadata", json.dumps(metadata, sort_keys=True).encode()))
    records.append(("ildg-binary-data", np.ascontiguousarray(ordered, dtype=">c16").tobytes()))
    write_lime(path, records)


def read_ildg(path):
    """``(links, header)`` from an ILDG/LIME file, in the array contract's layout."""
    records = read_lime(path)
    kinds = dict(records)
    if "ildg-format" not in kinds or "ildg-binary-data" not in kinds:
        raise GaugeFormatError(f"{path}: no ildg-format or ildg-binary-data record")
    xml = kinds["ildg-format"].decode(errors="replace")
    field = re.search(r"<field>\s*(\w+)\s*</field>", xml)
    precision = re.search(r"<precision>\s*(\d+)\s*</precision>", xml)
    sizes = re.findall(r"<l([a-z0-9]+)>\s*(\d+)\s*</l\1>", xml)
    if not field or not precision or not sizes:
        raise GaugeFormatError(f"{path}: ildg-format lacks field, precision or sizes")
    group = field.group(1).replace("gauge", "").upper()
    n = 1 if group == "U1" else int(group[2:]) if group.startswith("SU") else None
    if n is None:
        raise GaugeFormatError(f"{path}: unknown field {field.group(1)!r}")
    dims = [int(v) for _k, v in sizes]
    dtype = {"64": ">c16", "32": ">c8"}.get(precision.group(1))
    if dtype is None:
        raise GaugeFormatError(f"{path}: precision {precision.group(1)} not 32 or 64")
    data = kinds["ildg-binary-data"]
    d = len(dims)
    expected = int(np.prod(dims)) * d * n * n * np.dtype(dtype).itemsize
    if len(data) != expected:
        raise GaugeFormatError(f"{path}: binary data has {len(data)} bytes, expected {expected}")
    ordered = np.frombuffer(data, dtype=dtype).reshape(tuple(reversed(dims)) + (d, n, n))
    links = np.transpose(ordered, (d,) + tuple(range(d - 1, -1, -1)) + (d + 1, d + 2)).astype(np.complex128)
    if group == "U1":
        links = np.angle(links[..., 0, 0])
    metadata = json.loads(kinds["deepvre-metadata"]) if "deepvre-metadata" in kinds else {}
    return links, {"format": "ildg", "group": group, "dims": dims, "metadata": metadata}


def read_config(path):
    """Read either format (by its first bytes): ``(links, header)``."""
    with open(path, "rb") as f:
        head = f.read(8)
    if head == MAGIC:
        return read_deepvre(path)
    if len(head) >= 4 and struct.unpack(">I", head[:4])[0] == LIME_MAGIC:
        return read_ildg(path)
    raise GaugeFormatError(f"{path}: neither a deepvre gauge file nor ILDG/LIME")


def write_config(path, links, metadata=None, format="deepvre"):
    """Write in ``format`` ``deepvre`` (default) or ``ildg``."""
    if format == "deepvre":
        return write_deepvre(path, links, metadata)
    if format == "ildg":
        return write_ildg(path, links, metadata)
    raise ValueError(f"format must be deepvre or ildg, not {format!r}")


def read_header(path):
    """The header (group, dims, metadata) without reading the links: cheap, for planning."""
    with open(path, "rb") as f:
        head = f.read(12)
        if head[:8] == MAGIC:
            (length,) = struct.unpack("<I", head[8:12])
            return json.loads(f.read(length))
        f.seek(0)
        small = {}
        while True:
            raw = f.read(LIME_HEADER.size)
            if len(raw) < LIME_HEADER.size:
                break
            magic, _v, _flags, length, kind = LIME_HEADER.unpack(raw)
            if magic != LIME_MAGIC:
                raise GaugeFormatError(f"{path}: neither a deepvre gauge file nor ILDG/LIME")
            kind = kind.rstrip(b"\0").decode(errors="replace")
            if length < 1 << 16:
                small[kind] = f.read(length)
                f.seek(-length % 8, 1)
            else:
                f.seek(length + (-length % 8), 1)
    meta = json.loads(small["deepvre-metadata"]) if "deepvre-metadata" in small else {}
    return {"format": "ildg", "metadata": meta}
