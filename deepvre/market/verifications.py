"""Verification records: who re-ran a published version's lineage, when, on what, and the result.

``deepvre market verify NAME:VERSION`` re-runs a version (:mod:`deepvre.market.verify`) and sends
its claim here; the marketplace appends it to the version as a record signed by the service::

    {"id": 3, "name": "cells-mobilenet", "version": "1.0.2", "verifier": "ana",
     "time": "2026-11-30T23:40:12Z", "result": "drifted",      # verified | drifted | could not run
     "reason": "transfer.accuracy differs by 0.031 (tolerance 0.02)",
     "metrics": {"transfer.accuracy": {"published": 0.91, "reproduced": 0.879, "difference": -0.031,
                                       "tolerance": 0.02}},
     "environment": {...deepvre.runs.platform's record...},
     "signature": "ed25519 hex", "valid": true}

The caller sends only ``result``, ``reason``, ``metrics`` and ``environment``; the service adds the
verifier (the authenticated caller), the time and the signature: Ed25519 (``cryptography``) over the
record's canonical JSON, with a key the service keeps in its state folder (``verification-key`` in
``$DEEPVRE_MARKET_DIR``, mode 0600). Records are never changed or deleted (no API does it), and the
version stays as it was. Reading checks each signature again (``valid``): a row changed in the
database without the key reads ``valid: false``. Whoever may see a version may verify it and read
its records; nobody else learns they exist (404).
"""

import datetime
import functools
import json
import os

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..errors import Invalid
from .tables import Base, now

KEY_FILE = "verification-key"
RESULTS = ("verified", "drifted", "could not run")
CLAIM_KEYS = ("result", "reason", "metrics", "environment")


class VerificationRow(Base):
    """One signed record, appended; ``record`` is the signed canonical JSON."""

    __tablename__ = "verifications"
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(sa.String(64), index=True)
    version: Mapped[str] = mapped_column(sa.String(64))
    verifier: Mapped[str] = mapped_column(sa.String(255))
    created: Mapped[datetime.datetime] = mapped_column(sa.DateTime, default=now)
    record: Mapped[str] = mapped_column(sa.Text)
    signature: Mapped[str] = mapped_column(sa.String(128))
    __table_args__ = (sa.ForeignKeyConstraint(["name", "version"], ["versions.name", "versions.version"],
                                              ondelete="CASCADE"),)


def canonical(record):
    """The bytes a signature covers: sorted keys, no spaces, UTF-8."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _key_path(folder=None):
    from .catalog import default_root

    return os.path.join(str(folder or default_root()), KEY_FILE)


def signing_key(path=None):
    """The service's Ed25519 private key at ``path`` (default: ``verification-key`` in the market
    folder, ``$DEEPVRE_MARKET_DIR``), made once with mode 0600; every process of the service reads the
    same one."""
    return _load_key(os.path.abspath(path or _key_path()))


@functools.lru_cache(maxsize=8)
def _load_key(path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from ..private_dirs import untrusted_parent

    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    unsafe = untrusted_parent(path)
    if unsafe:  # another account could swap the key for one it knows
        raise PermissionError(f"{path}: the folder {unsafe} is another account's or writable by others")
    if not os.path.exists(path):
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        tmp = f"{path}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, path)  # fails if a sibling process made one first: then its key is the key
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    with open(path, "rb") as fh:
        return serialization.load_pem_private_key(fh.read(), password=None)


def public_key_hex(key):
    from cryptography.hazmat.primitives import serialization

    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def sign(record, key):
    """Hex Ed25519 signature of ``record`` (:func:`canonical`)."""
    return key.sign(canonical(record)).hex()


def signature_ok(record, signature, public_key):
    """Whether ``signature`` (hex) is ``public_key``'s (an Ed25519 public key) over ``record``."""
    from cryptography.exceptions import InvalidSignature

    try:
        public_key.verify(bytes.fromhex(signature), canonical(record))
    except (InvalidSignature, ValueError):
        return False
    return True


def check_claim(claim):
    """``claim`` (what a verifier sends) as a dict of :data:`CLAIM_KEYS`; Invalid naming each problem."""
    if not isinstance(claim, dict):
        raise Invalid("a verification is a JSON object")
    problems = [f"{k}: not accepted (the service records it)" for k in claim if k not in CLAIM_KEYS]
    if claim.get("result") not in RESULTS:
        problems.append(f"result: {claim.get('result')!r} is not one of {', '.join(RESULTS)}")
    if not isinstance(claim.get("reason", ""), str):
        problems.append("reason: not a string")
    if not isinstance(claim.get("metrics", {}), dict):
        problems.append("metrics: not an object")
    if not isinstance(claim.get("environment", {}), dict):
        problems.append("environment: not an object")
    if problems:
        raise Invalid("; ".join(problems))
    return {"result": claim["result"], "reason": claim.get("reason", ""), "metrics": claim.get("metrics") or {},
            "environment": claim.get("environment") or {}}


def _ready(catalog):
    """Create the table in ``catalog``'s index once (catalogs opened before this module was imported)."""
    if getattr(catalog, "_verifications_ready", False):
        return
    try:
        VerificationRow.__table__.create(catalog.engine, checkfirst=True)
    except sa.exc.OperationalError as err:  # a sibling process made it meanwhile
        if "already exists" not in str(err):
            raise
    catalog._verifications_ready = True


def _entry(row, public_key):
    record = json.loads(row.record)
    return {"id": row.id, **record, "signature": row.signature,
            "valid": signature_ok(record, row.signature, public_key) and record.get("name") == row.name
            and record.get("version") == row.version and record.get("verifier") == row.verifier}


def add(catalog, caller, name, version, claim, key=None):
    """Append ``caller``'s verification ``claim`` of ``name:version`` (NotFound if they may not see
    it), signed with the service's key; returns the record."""
    claim = check_claim(claim)
    entry = catalog.show(caller, name, version)  # NotFound for the invisible
    key = key or signing_key()
    record = {"name": name, "version": entry["version"], "verifier": caller.name,
              "time": now().isoformat(timespec="seconds") + "Z", **claim}
    _ready(catalog)
    with catalog.Session.begin() as session:
        row = VerificationRow(name=name, version=entry["version"], verifier=caller.name, created=now(),
                              record=json.dumps(record), signature=sign(record, key))
        session.add(row)
        session.flush()
        return _entry(row, key.public_key())


def records(catalog, caller, name, version, key=None):
    """Every verification record of ``name:version``, oldest first, each signature checked (``valid``)."""
    entry = catalog.show(caller, name, version)
    public_key = (key or signing_key()).public_key()
    _ready(catalog)
    with catalog.Session() as session:
        rows = session.scalars(sa.select(VerificationRow).where(
            VerificationRow.name == name, VerificationRow.version == entry["version"]).order_by(VerificationRow.id))
        return [_entry(row, public_key) for row in rows]


def badge(found):
    """The latest valid record's result, for a badge: ``verified``, ``drifted``, ``could not run`` or
    ``unverified`` (none)."""
    valid = [r for r in found if r.get("valid")]
    return valid[-1]["result"] if valid else "unverified"
