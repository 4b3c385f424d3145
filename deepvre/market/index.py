"""The catalog index: its database, and searches composed of full text, filters and sorts.

SQLite by default; the same code runs on PostgreSQL given a ``postgresql://`` URL. The tables are in
:mod:`.tables`, full text (and everything about SQLite FTS5) in :mod:`.fulltext`.
"""

import json

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import sessionmaker

from . import fulltext
from .tables import Base, ModelRow, visible_to

SORTS = {
    "name": ("name", False),
    "title": ("title", False),
    "updated": ("updated", True),
    "created": ("created", True),
}


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
    fulltext.prepare(engine, Session)
    return engine, Session


def search_query(session, caller, query="", filters=None, sort=None, limit=50, offset=0, depth=None, tiered=False):
    """A SELECT of visible :class:`ModelRow` matching ``query`` and ``filters``, sorted.

    ``filters``: ``use_case``, ``task``, ``library``, ``category``, ``visibility``, ``owner``,
    ``deprecated`` (default: hide deprecated). ``sort``: name, title, updated, created or
    relevance (the default with a query; name order without one), ``-`` in front reverses.

    Relevance is :mod:`.fulltext`'s (with SQLite FTS5: weighted bm25, :data:`.fulltext.RANK`).
    ``tiered`` (for broad queries): models with every word in the name, title or tags come first, ranked
    by how well those match, then the rest by all fields. ``depth``: rank only the best ``depth`` hits (of the first tier when
    ``tiered``). The answer is exact when it still fills ``limit``; otherwise ask again without
    ``depth`` (as :meth:`Catalog.search` does).
    """
    filters = dict(filters or {})
    stmt = sa.select(ModelRow).where(visible_to(caller))
    stmt, ranks = fulltext.match(stmt, session.get_bind(), query, depth, tiered, sort)
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


FACETS = ("use_case", "tasks", "libraries", "categories", "tags", "owner", "visibility")


def facet_counts(session, caller):
    """``{facet: {value: models}}`` over the models ``caller`` may see, deprecated ones aside: what
    a search can be filtered by (:data:`FACETS`), most frequent first. One read of the summary
    columns, counted here (the JSON and space-separated columns are not SQL sets)."""
    columns = (ModelRow.use_case, ModelRow.tasks, ModelRow.libraries, ModelRow.categories, ModelRow.tags,
               ModelRow.owner, ModelRow.visibility)
    rows = session.execute(sa.select(*columns).where(visible_to(caller), ModelRow.deprecated.is_(False)))
    counts = {facet: {} for facet in FACETS}
    for use_case, tasks, libraries, categories, tags, owner, visibility in rows:
        values = {"use_case": [use_case] if use_case else [], "tasks": json.loads(tasks or "[]"),
                  "libraries": json.loads(libraries or "[]"), "categories": json.loads(categories or "[]"),
                  "tags": (tags or "").split(), "owner": [owner], "visibility": [visibility]}
        for facet, found in values.items():
            for value in set(found):
                counts[facet][value] = counts[facet].get(value, 0) + 1
    return {facet: dict(sorted(found.items(), key=lambda kv: (-kv[1], kv[0]))) for facet, found in counts.items()}
