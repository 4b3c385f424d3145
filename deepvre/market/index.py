"""The catalog index: SQLAlchemy tables and full-text search.

SQLite by default (full text with an FTS5 table); the same code runs on PostgreSQL given a
``postgresql://`` URL (full text with ``to_tsvector``/``websearch_to_tsquery``). One row per model
(name, owner, visibility, the latest version's searchable fields) and one per immutable version
(its metadata and file checksums). The primary key ``(name, version)`` is what makes two
concurrent publishes of the same version end with exactly one winner.
"""

import datetime
import functools
import json
import logging
import sqlite3
import weakref

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

log = logging.getLogger("deepvre.market")

# Engines whose searches use SQLite FTS5 (others: PostgreSQL full text, or the LIKE fallback).
_FTS5 = weakref.WeakKeyDictionary()

# FTS5's rank: bm25 with column weights (name, title, summary, description, tags), so that a word
# in the title or the tags counts more than one in the description.
RANK = "bm25(0.0, 8.0, 3.0, 1.0, 5.0)"

SORTS = {
    "name": ("name", False),
    "title": ("title", False),
    "updated": ("updated", True),
    "created": ("created", True),
}


def now():
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class ModelRow(Base):
    __tablename__ = "models"
    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(sa.String(255), index=True)
    visibility: Mapped[str] = mapped_column(sa.String(16), index=True)
    deprecated: Mapped[bool] = mapped_column(sa.Boolean, default=False)  # in the listing indexes below
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
    created: Mapped[datetime.datetime] = mapped_column(sa.DateTime, default=now, index=True)
    updated: Mapped[datetime.datetime] = mapped_column(sa.DateTime, default=now, index=True)

    # Listings (no query) walk one of these in order and stop after a page; a bare index on
    # ``deprecated`` made SQLite read and sort every row instead (8 ms for a page of 10,000).
    __table_args__ = tuple(
        sa.Index(f"ix_models_listing_{key}", "deprecated", key, "name") for key in ("updated", "created", "title")
    ) + (sa.Index("ix_models_listing_name", "deprecated", "name"),)


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


class PendingText(Base):
    """Models whose FTS5 row is out of date: published by a process whose SQLite lacks FTS5."""

    __tablename__ = "models_fts_pending"
    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)


@functools.cache
def fts5_available():
    """Whether this process's SQLite has FTS5.

    TensorFlow's ``libtensorflow_cc`` carries its own SQLite without FTS5 and is loaded with
    ``RTLD_GLOBAL``: if it is loaded before Python's ``_sqlite3``, that module binds to it.
    ``import deepvre`` loads ``sqlite3`` first for this reason; a process that imported TensorFlow
    earlier still works, with the LIKE fallback of :func:`search_query`.
    """
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE VIRTUAL TABLE temp.probe USING fts5(x)")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


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
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX IF EXISTS ix_models_deprecated")  # made by earlier versions
    Session = sessionmaker(engine, expire_on_commit=False)
    if engine.dialect.name == "sqlite":
        _FTS5[engine] = fts5_available()
        if _FTS5[engine]:
            with engine.begin() as conn:
                conn.exec_driver_sql(
                    "CREATE VIRTUAL TABLE IF NOT EXISTS models_fts USING fts5("
                    "name UNINDEXED, title, summary, description, tags, tokenize='porter unicode61')"
                )
                if conn.exec_driver_sql("SELECT v FROM models_fts_config WHERE k = 'rank'").scalar() != RANK:
                    conn.exec_driver_sql("INSERT INTO models_fts(models_fts, rank) VALUES ('rank', ?)", (RANK,))
                # rows written before the FTS table existed are indexed now
                conn.exec_driver_sql(
                    "INSERT OR IGNORE INTO models_fts_pending(name) "
                    "SELECT name FROM models WHERE name NOT IN (SELECT name FROM models_fts)"
                )
            catch_up(Session)
        else:
            log.warning(
                "SQLite %s in this process has no FTS5 (TensorFlow was probably imported before "
                "deepvre): catalog search falls back to substring matching, without stemming",
                sqlite3.sqlite_version,
            )
    return engine, Session


def uses_fts5(bind):
    return _FTS5.get(bind.engine if isinstance(bind, sa.Connection) else bind, False)


def _write_fts(session, row):
    session.execute(sa.text("DELETE FROM models_fts WHERE name = :n"), {"n": row.name})
    session.execute(
        sa.text("INSERT INTO models_fts(name, title, summary, description, tags) VALUES (:n, :t, :s, :d, :g)"),
        {"n": row.name, "t": row.title, "s": row.summary, "d": row.description, "g": row.tags},
    )


def index_text(session, row):
    """Keep the full-text index in step with ``row`` (SQLite FTS5; PostgreSQL needs nothing).

    Without FTS5 the row is queued in ``models_fts_pending``; the next process with FTS5 indexes it.
    """
    bind = session.get_bind()
    if bind.dialect.name != "sqlite":
        return
    if uses_fts5(bind):
        _write_fts(session, row)
    elif session.get(PendingText, row.name) is None:
        session.add(PendingText(name=row.name))


def catch_up(Session):
    """Index the rows queued by processes without FTS5 (cheap when there are none)."""
    with Session() as session:
        if session.scalar(sa.select(PendingText.name).limit(1)) is None:
            return
    with Session.begin() as session:
        # the DELETE takes the write lock first, so what it returns is read consistently
        names = list(session.scalars(sa.text("DELETE FROM models_fts_pending RETURNING name")))
        for row in session.scalars(sa.select(ModelRow).where(ModelRow.name.in_(names))):
            _write_fts(session, row)


def query_words(text):
    """The words of a search query: runs of letters and digits (no operators, nothing to escape),
    each once."""
    words = {}
    for word in "".join(c if c.isalnum() else " " for c in text or "").split():
        words.setdefault(word.lower(), word)
    return list(words.values())


def fts_query(text):
    """Words of ``text`` as an FTS5 query that is always valid: each word quoted, prefix-matched."""
    return " ".join(f'"{w}"*' for w in query_words(text))


def text_hits(session, query, cap, caller=None):
    """How many rows ``caller`` may see (None: every row) the FTS5 query matches, counted up to
    ``cap`` (no ranking: cheap). Only visible rows count: the count decides how a search is
    planned and ordered (tiering), which must not depend on models the caller cannot see."""
    if caller is None:
        return session.execute(
            sa.text("SELECT count(*) FROM (SELECT 1 FROM models_fts WHERE models_fts MATCH :q LIMIT :cap)"),
            {"q": fts_query(query), "cap": int(cap)},
        ).scalar()
    hits = sa.text("SELECT name FROM models_fts WHERE models_fts MATCH :q").columns(name=sa.String)
    hits = hits.bindparams(q=fts_query(query)).subquery()
    visible = sa.select(sa.literal(1)).select_from(ModelRow).join(hits, hits.c.name == ModelRow.name)
    visible = visible.where(visible_to(caller)).limit(int(cap)).subquery()
    return session.scalar(sa.select(sa.func.count()).select_from(visible))


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


def search_query(session, caller, query="", filters=None, sort=None, limit=50, offset=0, depth=None, tiered=False):
    """A SELECT of visible :class:`ModelRow` matching ``query`` and ``filters``, sorted.

    ``filters``: ``use_case``, ``task``, ``library``, ``category``, ``visibility``, ``owner``,
    ``deprecated`` (default: hide deprecated). ``sort``: name, title, updated, created or
    relevance (the default with a query; name order without one), ``-`` in front reverses.

    Relevance with SQLite FTS5 is weighted bm25 (:data:`RANK`). ``tiered`` (for broad queries):
    models with every word in the title or tags come first, ranked by how well those match, then
    the rest by all fields. ``depth``: rank only the best ``depth`` hits (of the first tier when
    ``tiered``). The answer is exact when it still fills ``limit``; otherwise ask again without
    ``depth`` (as :meth:`Catalog.search` does).
    """
    filters = dict(filters or {})
    stmt = sa.select(ModelRow).where(visible_to(caller))
    ranks = []  # lower is better
    words = query_words(query)
    bind = session.get_bind()
    if words:
        if uses_fts5(bind):
            q = fts_query(query)
            first = "{title tags} : (" + q + ")"
            top = depth and sort in (None, "relevance")
            if tiered and top:
                sql, params = "SELECT name, 0 AS tier, rank AS score FROM models_fts WHERE models_fts MATCH :first " \
                    "ORDER BY rank LIMIT :depth", {"first": first, "depth": int(depth)}
            elif tiered:
                sql = "SELECT name, 0 AS tier, rank AS score FROM models_fts WHERE models_fts MATCH :first UNION ALL " \
                    "SELECT name, 1, rank FROM models_fts WHERE models_fts MATCH :rest"
                params = {"first": first, "rest": f"({q}) NOT {first}"}
            else:
                sql = "SELECT name, 0 AS tier, rank AS score FROM models_fts WHERE models_fts MATCH :q" + \
                    (" ORDER BY rank LIMIT :depth" if top else "")
                params = {"q": q, **({"depth": int(depth)} if top else {})}
            hits = sa.text(sql).columns(name=sa.String, tier=sa.Integer, score=sa.Float).bindparams(**params).subquery()
            stmt = stmt.join(hits, hits.c.name == ModelRow.name)
            ranks = [hits.c.tier, hits.c.score] if tiered else [hits.c.score]
        elif bind.dialect.name == "sqlite":
            stmt, rank = _substring_search(stmt, words)
            ranks = [rank]
        else:
            doc = sa.func.to_tsvector(
                "english",
                sa.func.concat_ws(" ", ModelRow.name, ModelRow.title, ModelRow.summary, ModelRow.description, ModelRow.tags),
            )
            tsq = sa.func.to_tsquery("english", " & ".join(f"{w}:*" for w in words))
            stmt = stmt.where(doc.op("@@")(tsq))
            ranks = [-sa.func.ts_rank(doc, tsq)]
    for key, column in (("task", ModelRow.tasks), ("library", ModelRow.libraries), ("category", ModelRow.categories)):
        if filters.get(key):
            stmt = stmt.where(column.like("%" + json.dumps(filters[key]) + "%"))
    for key, column in (("use_case", ModelRow.use_case), ("visibility", ModelRow.visibility), ("owner", ModelRow.owner)):
        if filters.get(key):
            stmt = stmt.where(column == filters[key])
    if not filters.get("deprecated"):
        stmt = stmt.where(ModelRow.deprecated.is_(False))
    sort = sort or ("relevance" if ranks else "name")
    reverse = sort.startswith("-")
    key = sort.lstrip("-")
    if key == "relevance" and not ranks:  # no query: every row ranks the same, name order
        key = "name"
    if key == "relevance":
        order = (*(r.desc() if reverse else r.asc() for r in ranks), ModelRow.name)
    elif key in SORTS:
        # ties go by name in the same direction, so that one listing index serves either direction
        column, descending = getattr(ModelRow, SORTS[key][0]), SORTS[key][1] != reverse
        order = (column.desc(), ModelRow.name.desc()) if descending else (column.asc(), ModelRow.name.asc())
        order = order[:1] if key == "name" else order
    else:
        raise ValueError(f"sort: unknown key {sort!r} (known: relevance, {', '.join(SORTS)})")
    return stmt.order_by(*order).limit(limit).offset(offset)


def _substring_search(stmt, words):
    """The FTS5 fallback: every word a case-insensitive substring of the searched fields.

    Returns the filtered statement and a rank (lower is better: more words in the title).
    """
    fields = (ModelRow.title, ModelRow.summary, ModelRow.description, ModelRow.tags)
    in_title = []
    for word in words:
        word = word.lower()
        stmt = stmt.where(sa.or_(*(sa.func.instr(sa.func.lower(f), word) > 0 for f in fields)))
        in_title.append(sa.case((sa.func.instr(sa.func.lower(ModelRow.title), word) > 0, 1), else_=0))
    return stmt, -sum(in_title[1:], in_title[0])
