"""Usage accounting: one row per server start in deepvre's own database (SQLAlchemy), by default
``usage.sqlite`` in the hub's state folder (root's, 0600: only the hub reads it).

A row holds who, which server, which profile, which GPUs, start, end, why it ended and who ended
it. A row without ``end`` is a server that holds its resources now: the quotas
(:mod:`deepvre_hub.quotas`) count those and the rolling window's GPU-hours from here. The table
``deepvre_gpu_queue`` holds the GPU spawns waiting in the queue (:mod:`deepvre_hub.gpu_queue`), so
a restarted hub keeps their order; ``deepvre_runs`` the batch runs holding GPUs, so a restarted
hub keeps their GPUs. ``kind`` is ``server``, or ``run`` for a batch run (``deepvre
run`` with a profile, admitted by :mod:`deepvre_hub.run_admission`; ``server`` holds its run id).

The schema carries a version (table ``deepvre_schema``): :func:`open_book` creates the tables,
refuses a database of a newer deepvre, and runs :data:`MIGRATIONS` from an older one.
"""

import datetime
import os

import sqlalchemy as sa

SCHEMA_VERSION = 3  # 2: the GPU queue's table (deepvre_gpu_queue); 3: the admitted runs (deepvre_runs)

# Why a server ended (the ``reason`` column)
USER = "user"  # its owner stopped it
ADMIN = "admin"  # another user (an admin) stopped it
CULLED = "culled"  # the idle culler stopped it
LIFETIME = "lifetime"  # the culler stopped it at its maximum lifetime (culling.max_age), idle or not
SERVICE = "service"  # another hub service stopped it
HUB = "hub"  # the hub stopped it: its shutdown (hub.keep_servers false), or it did not answer at the hub's start
FAILED = "failed"  # it did not start, or it exited on its own
GONE = "gone"  # a restarted hub found it gone (it ended while the hub was down), or a run's process vanished
DONE = "done"  # a batch run finished its notebook
CANCELLED = "cancelled"  # a batch run was cancelled
REASONS = (USER, ADMIN, CULLED, LIFETIME, SERVICE, HUB, FAILED, GONE, DONE, CANCELLED)

metadata = sa.MetaData()

records = sa.Table(
    "deepvre_usage", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False, default="server"),
    sa.Column("user", sa.String(255), nullable=False, index=True),
    sa.Column("server", sa.String(255), nullable=False, default=""),
    sa.Column("profile", sa.String(255), nullable=False, default=""),
    sa.Column("gpus", sa.Integer, nullable=False, default=0),
    sa.Column("gpu_ids", sa.String(255), nullable=False, default=""),  # comma-separated indices
    sa.Column("start", sa.DateTime, nullable=False, index=True),
    sa.Column("end", sa.DateTime, nullable=True, index=True),
    sa.Column("reason", sa.String(32), nullable=True),
    sa.Column("ended_by", sa.String(255), nullable=True),  # the user or service that stopped it
)

schema = sa.Table(
    "deepvre_schema", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(255), nullable=False),
)

# The GPU spawns waiting in the queue (deepvre_hub.gpu_queue), so that a hub restart keeps their order
waiting = sa.Table(
    "deepvre_gpu_queue", metadata,
    sa.Column("owner", sa.String(511), primary_key=True),  # "user/server"
    sa.Column("gpus", sa.Integer, nullable=False),
    sa.Column("priority", sa.Integer, nullable=False, default=0),
    sa.Column("queued", sa.DateTime, nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),  # the order of arrival
)

# The batch runs holding GPUs now (deepvre_hub.run_admission), so that a restarted hub keeps them
admitted = sa.Table(
    "deepvre_runs", metadata,
    sa.Column("owner", sa.String(511), primary_key=True),  # "user/run:ID"
    sa.Column("user", sa.String(255), nullable=False),
    sa.Column("run", sa.String(255), nullable=False),
    sa.Column("profile", sa.String(255), nullable=False),
    sa.Column("gpu_ids", sa.String(255), nullable=False, default=""),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("uid", sa.Integer, nullable=True),
    sa.Column("usage_id", sa.Integer, nullable=False),
)

# {version: function(connection)} bringing a database of that version to version + 1
MIGRATIONS = {1: lambda connection: waiting.create(connection, checkfirst=True),
              2: lambda connection: admitted.create(connection, checkfirst=True)}


class UsageDatabaseError(RuntimeError):
    """The usage database cannot be used (a newer schema, or no migration from an older one)."""


def utcnow():
    """Now, as the naive UTC datetime the table stores."""
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None, microsecond=0)


def default_url(state_dir):
    return f"sqlite:///{os.path.join(state_dir, 'usage.sqlite')}"


def _private_sqlite(url):
    """Create a SQLite file 0600 before SQLAlchemy does (it would follow the umask)."""
    path = sa.engine.make_url(url).database
    if url.startswith("sqlite") and path and path != ":memory:":
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        os.chmod(path, 0o600)


def migrate(connection):
    """Bring the schema to :data:`SCHEMA_VERSION`; returns the version found (None: a new database)."""
    row = connection.execute(sa.select(schema.c.value).where(schema.c.key == "version")).first()
    found = int(row[0]) if row else None
    if found is not None and found > SCHEMA_VERSION:
        raise UsageDatabaseError(f"the usage database has schema version {found}, newer than this deepvre's "
                                 f"{SCHEMA_VERSION}: upgrade deepvre or point the hub at another database")
    if found is None:
        connection.execute(schema.insert().values(key="version", value=str(SCHEMA_VERSION)))
        return found
    for version in range(found, SCHEMA_VERSION):
        if version not in MIGRATIONS:
            raise UsageDatabaseError(f"no migration of the usage database from schema version {version}")
        MIGRATIONS[version](connection)
    connection.execute(schema.update().where(schema.c.key == "version").values(value=str(SCHEMA_VERSION)))
    return found


class UsageBook:
    """The accounting table of one database: open a row at a start, close it at the end."""

    def __init__(self, url):
        self.url = url
        _private_sqlite(url)
        self.engine = sa.create_engine(url, connect_args={"timeout": 30} if url.startswith("sqlite") else {})
        metadata.create_all(self.engine)
        with self.engine.begin() as connection:
            migrate(connection)
        self.opened_here = set()  # rows this process opened
        self.swept = False

    def open(self, user, server, profile, gpu_ids=(), start=None, kind="server"):
        """Record a start; returns the row's id."""
        gpu_ids = [str(g) for g in gpu_ids]
        with self.engine.begin() as connection:
            result = connection.execute(records.insert().values(
                kind=kind, user=user, server=server, profile=profile, gpus=len(gpu_ids),
                gpu_ids=",".join(gpu_ids), start=start or utcnow()))
            record_id = result.inserted_primary_key[0]
        self.opened_here.add(record_id)
        return record_id

    def close(self, record_id, reason, ended_by=None, end=None):
        """Record the end of row ``record_id`` (once: a closed row stays as it is); True if it closed it."""
        with self.engine.begin() as connection:
            result = connection.execute(
                records.update().where(records.c.id == record_id, records.c.end.is_(None))
                .values(end=end or utcnow(), reason=reason, ended_by=ended_by))
            return result.rowcount == 1

    def sweep(self, referenced):
        """Close, as ``gone``, the open rows of earlier hub processes that no server's state
        holds (``referenced``: ids), e.g. of a hub killed while a server started; returns their ids."""
        self.swept, referenced = True, set(referenced)
        with self.engine.begin() as connection:
            found = connection.execute(sa.select(records.c.id).where(records.c.end.is_(None))).scalars()
            stale = [i for i in found if i not in referenced and i not in self.opened_here]
            if stale:
                connection.execute(records.update().where(records.c.id.in_(stale))
                                   .values(end=utcnow(), reason=GONE, ended_by=None))
        return stale

    def rows(self, users=None, since=None, open_only=False):
        """Rows as dicts, oldest first: of ``users`` (None: everyone), still open or ended after
        ``since`` (None: all), or only the open ones."""
        query = sa.select(records).order_by(records.c.start, records.c.id)
        if users is not None:
            query = query.where(records.c.user.in_(list(users)))
        if open_only:
            query = query.where(records.c.end.is_(None))
        elif since is not None:
            query = query.where(sa.or_(records.c.end.is_(None), records.c.end > since))
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    # --- the GPU queue's waiting requests (gpu_queue.GpuQueue's store) ---------------------

    def queued(self):
        """The waiting requests as dicts, in order of arrival."""
        with self.engine.connect() as connection:
            return [dict(r._mapping) for r in connection.execute(sa.select(waiting).order_by(waiting.c.seq))]

    def enqueue(self, owner, gpus, priority, queued, seq):
        with self.engine.begin() as connection:
            connection.execute(waiting.delete().where(waiting.c.owner == owner))
            connection.execute(waiting.insert().values(owner=owner, gpus=gpus, priority=priority, queued=queued, seq=seq))

    def dequeue(self, owner):
        with self.engine.begin() as connection:
            connection.execute(waiting.delete().where(waiting.c.owner == owner))

    # --- the admitted batch runs (run_admission) ------------------------------------------

    def admitted_runs(self):
        with self.engine.connect() as connection:
            return [dict(r._mapping) for r in connection.execute(sa.select(admitted))]

    def admit_run(self, owner, user, run, profile, gpu_ids, pid, uid, usage_id):
        with self.engine.begin() as connection:
            connection.execute(admitted.delete().where(admitted.c.owner == owner))
            connection.execute(admitted.insert().values(owner=owner, user=user, run=run, profile=profile,
                                                        gpu_ids=",".join(gpu_ids), pid=pid, uid=uid,
                                                        usage_id=usage_id))

    def forget_run(self, owner):
        with self.engine.begin() as connection:
            connection.execute(admitted.delete().where(admitted.c.owner == owner))

    def get(self, record_id):
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(records).where(records.c.id == record_id)).first()
            return dict(row._mapping) if row else None


_BOOKS = {}


def book(url):
    """The :class:`UsageBook` of ``url``, one per hub process."""
    if url not in _BOOKS:
        _BOOKS[url] = UsageBook(url)
    return _BOOKS[url]


def hours(row, since=None, until=None):
    """Hours of ``row`` inside ``[since, until]`` (an open row runs until ``until``, default now)."""
    until = until or utcnow()
    start = max(row["start"], since) if since else row["start"]
    end = min(row["end"] or until, until)
    return max((end - start).total_seconds(), 0) / 3600
