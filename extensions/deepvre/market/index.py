"""The catalog index: SQLAlchemy tables and full-text search.

SQLite by default (full text with an FTS5 table); the same code runs on PostgreSQL given a
``postgresql://`` URL (full text with ``to_tsvector``/``websearch_to_tsquery``). One row per model
(name, owner, visibility, the latest version's searchable fields) and one per immutable version
(its metadata and file checksums). The primary key ``(name, version)`` is what makes two
concurrent publishes of the same version end with exactly one winner.
"""

import datetime
import json

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

SORTS = {
    "name": ("name", False),
    "title": ("title", False),
    "updated": ("updated", True),
    "created": ("created", True),
}


def now():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class ModelRow(Base):
    __tablename__ = "models"
    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(sa.String(255), index=True)
    visibility: Mapped[str] = mapped_column(sa.String(16), index=True)
    deprecated: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    latest: Mapped[str] = mapped_column(sa.String(64))
    title: Mapped[str] = mapped_column(sa.Text, default="")
    summary: Mapped[str] = mapped_column(sa.Text, default="")
    description: Mapped[str] = mapped_column(sa.Text, default="")
    tags: Mapped[str] = mapped_column(sa.Text, default="")  # space-joined, for search
    use_case: Mapped[str] = mapped_column(sa.String(64), index=True, default="")
    # JSON lists, matched as '%"value"%' so that filters are the same SQL on every database.
    tasks: Mapped[str] = mapped_column(sa.Text, default="[]")
    libraries: Mapped[str] = mapped_column(sa.Text, default="[]")
    categories: Mapped[str] = mapped_column(sa.Text, default="[]")
    created: Mapped[datetime.datetime] = mapped_column(sa.DateTime, default=now)
    updated: Mapped[datetime.datetime] = mapped_column(sa.DateTime, default=now, index=True)


class ModelGroup(Base):
    __tablename__ = "model_groups"
    name: Mapped[str] = mapped_column(sa.ForeignKey("models.name", ondelete="CASCADE"), primary_key=True)
    group: Mapped[str] = mapped_column(sa.String(255), primary_key=True)


class VersionRow(Base):
    __tablename__ = "versions"
    name: Mapped[str] = mapped_column(sa.ForeignKey("models.name", ondelete="CASCADE"), primary_key=True)
    version: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    published_by: Mapped[str] = mapped_column(sa.String(255))
    created: Mapped[datetime.datetime] = mapped_column(sa.DateTime, default=now)
    deprecated: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    document: Mapped[str] = mapped_column(sa.Text)  # the metadata, JSON
    files: Mapped[str] = mapped_column(sa.Text)  # {file name: {"sha256": ..., "size": ...}}, JSON


def open_index(url):
    """An engine and session factory for ``url``, with the tables (and FTS) created."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(conn, _record):
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()
    else:
        engine = sa.create_engine(url, pool_size=20, max_overflow=10)
    Base.metadata.create_all(engine)
    if engine.dialect.name == "sqlite":
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(
                    "CREATE VIRTUAL TABLE IF NOT EXISTS models_fts USING fts5("
                    "name UNINDEXED, title, summary, description, tags, tokenize='porter unicode61')"
                )
        except sa.exc.OperationalError as err:
            if "fts5" not in str(err):
                raise
            raise RuntimeError(
                "this process's SQLite has no FTS5; TensorFlow (which bundles one without it) was "
                "probably imported before deepvre.market: import deepvre.market first"
            ) from err
    return engine, sessionmaker(engine, expire_on_commit=False)


def index_text(session, row):
    """Keep the full-text index in step with ``row`` (SQLite FTS5; PostgreSQL needs nothing)."""
    if session.get_bind().dialect.name != "sqlite":
        return
    session.execute(sa.text("DELETE FROM models_fts WHERE name = :n"), {"n": row.name})
    session.execute(
        sa.text("INSERT INTO models_fts(name, title, summary, description, tags) VALUES (:n, :t, :s, :d, :g)"),
        {"n": row.name, "t": row.title, "s": row.summary, "d": row.description, "g": row.tags},
    )


def fts_query(text):
    """Words of ``text`` as an FTS5 query that is always valid: each word quoted, prefix-matched."""
    words = [w for w in "".join(c if c.isalnum() else " " for c in text).split() if w]
    return " ".join(f'"{w}"*' for w in words)


def visible_to(caller):
    """The WHERE clause for models ``caller`` may see (public, own, a shared group; admins all)."""
    if caller.admin:
        return sa.true()
    clauses = [ModelRow.visibility == "public", ModelRow.owner == caller.name]
    if caller.groups:
        clauses.append(
            sa.and_(
                ModelRow.visibility == "group",
                sa.exists().where(ModelGroup.name == ModelRow.name, ModelGroup.group.in_(list(caller.groups))),
            )
        )
    return sa.or_(*clauses)


def search_query(session, caller, query="", filters=None, sort=None, limit=50, offset=0):
    """A SELECT of visible :class:`ModelRow` matching ``query`` and ``filters``, sorted.

    ``filters``: ``use_case``, ``task``, ``library``, ``category``, ``visibility``, ``owner``,
    ``deprecated`` (default: hide deprecated). ``sort``: name, title, updated, created or
    relevance (the default with a query), ``-`` in front reverses.
    """
    filters = dict(filters or {})
    stmt = sa.select(ModelRow).where(visible_to(caller))
    rank = None
    words = fts_query(query or "")
    if words:
        if session.get_bind().dialect.name == "sqlite":
            hits = sa.text("SELECT name, bm25(models_fts) AS score FROM models_fts WHERE models_fts MATCH :q").columns(
                name=sa.String, score=sa.Float
            ).bindparams(q=words).subquery()
            stmt = stmt.join(hits, hits.c.name == ModelRow.name)
            rank = hits.c.score  # lower is better
        else:
            doc = sa.func.to_tsvector(
                "english",
                sa.func.concat_ws(" ", ModelRow.name, ModelRow.title, ModelRow.summary, ModelRow.description, ModelRow.tags),
            )
            tsq = sa.func.to_tsquery("english", " & ".join(f"{w.strip(chr(34) + '*')}:*" for w in words.split()))
            stmt = stmt.where(doc.op("@@")(tsq))
            rank = -sa.func.ts_rank(doc, tsq)
    for key, column in (("task", ModelRow.tasks), ("library", ModelRow.libraries), ("category", ModelRow.categories)):
        if filters.get(key):
            stmt = stmt.where(column.like("%" + json.dumps(filters[key]) + "%"))
    for key, column in (("use_case", ModelRow.use_case), ("visibility", ModelRow.visibility), ("owner", ModelRow.owner)):
        if filters.get(key):
            stmt = stmt.where(column == filters[key])
    if not filters.get("deprecated"):
        stmt = stmt.where(ModelRow.deprecated.is_(False))
    sort = sort or ("relevance" if rank is not None else "name")
    reverse = sort.startswith("-")
    key = sort.lstrip("-")
    if key == "relevance" and rank is not None:
        order = rank.desc() if reverse else rank.asc()
    elif key in SORTS:
        column, descending = getattr(ModelRow, SORTS[key][0]), SORTS[key][1]
        order = column.desc() if descending != reverse else column.asc()
    else:
        raise ValueError(f"sort: unknown key {sort!r} (known: relevance, {', '.join(SORTS)})")
    return stmt.order_by(order, ModelRow.name).limit(limit).offset(offset)
