"""Try-it registrations: which user's model service answers a model version's try-it page.

A user's server registers a service it serves (:class:`Registrations`, ``POST api/tryit``) with
the address of its TCP listener and its predict-only token (``$DEEPVRE_SERVE_TRY_TOKEN`` of
:mod:`deepvre.serving.launch`); the marketplace keeps them in its database (every service process
sees them) and never shows the address or the token. Who may register: the model's owner, or
anyone for a base model of the reserved system account (the hub's, everyone's to serve). The
address is an ``IP:port`` literal (:func:`check_address`): loopback, or the host of the owner's
own server as the hub routes it, and never a port of the platform itself.
"""

import datetime
import ipaddress
import re

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..errors import Forbidden
from .catalog import SYSTEM_ACCOUNT
from .tables import Base, now

# The base path the service answers under (a server's proxy prefix): percent-escaped URL segments
BASE_PATH = re.compile(r"(/[A-Za-z0-9._~%!$&'()*+,;=:@-]+)*")
TOKEN = re.compile(r"[A-Za-z0-9_-]{32,128}")


class TryitRow(Base):
    __tablename__ = "tryit_services"
    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    version: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    server_user: Mapped[str] = mapped_column(sa.String(255), primary_key=True)  # whose service answers
    address: Mapped[str] = mapped_column(sa.String(64))
    base_path: Mapped[str] = mapped_column(sa.Text, default="")
    token: Mapped[str] = mapped_column(sa.String(128))
    registered: Mapped[datetime.datetime] = mapped_column(sa.DateTime, default=now)


def create_table(engine):
    """Make the table if it is missing (several service processes may race: the loser finds it made)."""
    try:
        TryitRow.__table__.create(engine, checkfirst=True)
    except sa.exc.DatabaseError:
        if not sa.inspect(engine).has_table(TryitRow.__tablename__):
            raise


def check_address(address, server_hosts=(), refused_ports=()):
    """``(ip, port)`` of ``address``, an ``IP:port`` literal (``[v6]:port`` for IPv6), else ValueError.

    Loopback, or one of ``server_hosts`` (the caller's own server as the hub routes it); never a
    port in ``refused_ports`` (the hub's, the proxy's, the marketplace's own) nor an unspecified,
    multicast or link-local address (pure).
    """
    text = str(address or "")
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([0-9.]+):(\d{1,5})", text)
    if not match:
        raise ValueError(f"address {text!r} must be an IP:port literal such as 127.0.0.1:5000 (no host names)")
    host, port = (match.group(1), match.group(2)) if match.group(1) else (match.group(3), match.group(4))
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"address {text!r}: {host!r} is not an IP address") from None
    port = int(port)
    if not 1 <= port <= 65535:
        raise ValueError(f"address {text!r}: port {port} is out of range")
    if ip.is_unspecified or ip.is_multicast or ip.is_link_local:
        raise ValueError(f"address {text!r}: {ip} is not a service's address")
    if port in set(refused_ports) and (ip.is_loopback or str(ip) in server_hosts):
        raise ValueError(f"address {text!r}: port {port} is the platform's own (hub, proxy or marketplace)")
    if not ip.is_loopback and str(ip) not in server_hosts:
        raise ValueError(f"address {text!r}: not loopback, and not your server's address as the hub routes it")
    return str(ip), port


def may_register(caller, entry):
    """Whether ``caller`` may register a service of the catalog entry ``entry`` (its owner; anyone for
    the system account's base models)."""
    return entry["owner"] == caller.name or entry["owner"] == SYSTEM_ACCOUNT


class Registrations:
    """The registrations in the catalog's database."""

    def __init__(self, catalog):
        self.catalog = catalog
        create_table(catalog.engine)

    def check(self, caller, name, version, address, base_path, token, server_hosts=(), refused_ports=()):
        """The catalog entry of ``name`` ``version`` once a registration of it by ``caller`` is acceptable.
        NotFound when ``caller`` may not see that version, Forbidden when it is another user's model,
        ValueError for a bad address, base path or token."""
        entry = self.catalog.show(caller, name, version)
        if not may_register(caller, entry):
            raise Forbidden(f"{name} {entry['version']} belongs to {entry['owner']!r}: only its owner may offer a "
                            "try-it service for it")
        check_address(address, server_hosts, refused_ports)
        if not isinstance(base_path, str) or not BASE_PATH.fullmatch(base_path) or "/../" in base_path + "/":
            raise ValueError(f"base_path {base_path!r} must be a URL path such as /user/ana/deepvre/services/1")
        if not isinstance(token, str) or not TOKEN.fullmatch(token):
            raise ValueError("try_token must be 32 to 128 URL-safe characters")
        return entry

    def register(self, caller, entry, address, base_path, token):
        """Record ``caller``'s service of ``entry`` (checked: :meth:`check`), replacing their previous
        one; returns what may be shown of it."""
        row = self.row(caller, entry, address, base_path, token)
        with self.catalog.Session.begin() as session:
            session.merge(row)
        return self.public(row)

    @staticmethod
    def row(caller, entry, address, base_path, token):
        """The (unsaved) registration of ``caller``'s service of ``entry``."""
        return TryitRow(name=entry["name"], version=entry["version"], server_user=caller.name, address=address,
                        base_path=base_path.rstrip("/"), token=token, registered=now())

    def deregister(self, caller, name, version):
        """Remove ``caller``'s registration of ``name`` ``version``; whether there was one."""
        with self.catalog.Session.begin() as session:
            row = session.get(TryitRow, (name, version, caller.name))
            if row is not None:
                session.delete(row)
            return row is not None

    def all(self):
        """Every registration (detached rows: the periodic check of :mod:`.trypage` asks each service)."""
        with self.catalog.Session() as session:
            rows = list(session.scalars(sa.select(TryitRow)))
            session.expunge_all()
        return rows

    def drop(self, row):
        """Remove the registration ``row`` if it is still the one stored (the same address and token:
        a service registered again meanwhile stays); whether it was removed."""
        with self.catalog.Session.begin() as session:
            found = session.get(TryitRow, (row.name, row.version, row.server_user))
            if found is None or (found.address, found.token, found.base_path) != (row.address, row.token, row.base_path):
                return False
            session.delete(found)
            return True

    def answering(self, name, version, owner=None, caller=None):
        """The registration that answers ``name`` ``version`` for the user ``caller``: the model
        ``owner``'s, else the caller's own (a base model they serve: never another user's service),
        else the latest."""
        with self.catalog.Session() as session:
            rows = list(session.scalars(sa.select(TryitRow).where(TryitRow.name == name, TryitRow.version == version)
                                        .order_by(TryitRow.registered.desc())))
        own = [row for row in rows if row.server_user == owner] or [row for row in rows if row.server_user == caller]
        return (own or rows or [None])[0]

    @staticmethod
    def public(row):
        """What a caller may see of a registration: never its address or token."""
        return {"name": row.name, "version": row.version, "server_user": row.server_user,
                "registered": row.registered.isoformat() + "Z"}
