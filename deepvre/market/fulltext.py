"""Full-text search of the catalog, and the one place that knows about SQLite FTS5.

SQLite searches with an FTS5 table (``models_fts``: stemmed words, bm25 weighted by field);
PostgreSQL with ``to_tsvector``/``to_tsquery``. TensorFlow's ``libtensorflow_cc`` carries its own
SQLite without FTS5 and loads it ``RTLD_GLOBAL``: in a process that imported TensorFlow before
``sqlite3`` (``import deepvre`` loads ``sqlite3`` first for this reason), Python's SQLite has no
FTS5. Such a process still works: it searches by substring (:func:`_substring_search`) and queues
what it publishes in ``models_fts_pending``, which the next process with FTS5 indexes
(:func:`catch_up`). Nothing outside this module needs to know.
"""

import functools
import logging
import sqlite3
import time
import weakref

import sqlalchemy as sa

from .tables import ModelRow, PendingText

log = logging.getLogger("deepvre.market")

# Engines whose searches use SQLite FTS5 (others: PostgreSQL full text, or the substring fallback).
_FTS5 = weakref.WeakKeyDictionary()
# When each FTS5 engine last indexed the queue (a search checks it at most once a second).
_CAUGHT_UP = weakref.WeakKeyDictionary()

# FTS5's rank: bm25 with column weights (name, words, title, summary, description, tags), so that a
# word of the model's name, its title or its tags counts more than one in the description. ``name``
# is the key (not searched); ``words`` holds the name again for search (the tokenizer splits
# ``mobilenet-v2-imagenet`` into its words).
RANK = "bm25(0.0, 8.0, 8.0, 3.0, 1.0, 5.0)"
COLUMNS = "name UNINDEXED, words, title, summary, description, tags"


@functools.cache
def fts5_available():
    """Whether this process's SQLite has FTS5 (see the module's text)."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE VIRTUAL TABLE temp.probe USING fts5(x)")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


def prepare(engine, Session):
    """Set up full text for a freshly opened ``engine`` (the FTS5 table and its rank on SQLite),
    and index what processes without FTS5 queued."""
    if engine.dialect.name != "sqlite":
        return
    _FTS5[engine] = fts5_available()
    if not _FTS5[engine]:
        log.warning(
            "SQLite %s in this process has no FTS5 (TensorFlow was probably imported before "
            "deepvre): catalog search falls back to substring matching, without stemming",
            sqlite3.sqlite_version,
        )
        return
    with engine.begin() as conn:
        columns = [row[1] for row in conn.exec_driver_sql("PRAGMA table_info(models_fts)")]
        if columns and "words" not in columns:  # made by an earlier version: names were not searched
            conn.exec_driver_sql("DROP TABLE models_fts")
        conn.exec_driver_sql(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS models_fts USING fts5({COLUMNS}, tokenize='porter unicode61')"
        )
        if conn.exec_driver_sql("SELECT v FROM models_fts_config WHERE k = 'rank'").scalar() != RANK:
            conn.exec_driver_sql("INSERT INTO models_fts(models_fts, rank) VALUES ('rank', ?)", (RANK,))
        # rows written before the FTS table existed are indexed now
        conn.exec_driver_sql(
            "INSERT OR IGNORE INTO models_fts_pending(name) "
            "SELECT name FROM models WHERE name NOT IN (SELECT name FROM models_fts)"
        )
    catch_up(Session)


def uses_fts5(bind):
    return _FTS5.get(bind.engine if isinstance(bind, sa.Connection) else bind, False)


def _write_fts(session, row):
    session.execute(sa.text("DELETE FROM models_fts WHERE name = :n"), {"n": row.name})
    session.execute(
        sa.text("INSERT INTO models_fts(name, words, title, summary, description, tags) "
                "VALUES (:n, :n, :t, :s, :d, :g)"),
        {"n": row.name, "t": row.title, "s": row.summary, "d": row.description, "g": row.tags},
    )


def index_row(session, row):
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


def refresh(engine, Session):
    """Before a search: index what processes without FTS5 queued (at most once a second)."""
    if uses_fts5(engine) and time.monotonic() - _CAUGHT_UP.get(engine, float("-inf")) > 1:
        catch_up(Session)
        _CAUGHT_UP[engine] = time.monotonic()


def ranks_relevance(engine, query):
    """Whether a search for ``query`` on ``engine`` is ranked by FTS5 (and so may be planned by
    :func:`text_hits`)."""
    return uses_fts5(engine) and bool(query_words(query))


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


def text_hits(session, query, cap, visible=None):
    """How many rows the FTS5 query matches among those ``visible`` (a WHERE clause on
    :class:`ModelRow`, as :func:`.tables.visible_to` makes; None: every row), counted up to ``cap``
    (no ranking: cheap). Only visible rows count: the count decides how a search is planned and
    ordered (tiering), which must not depend on models the caller cannot see."""
    if visible is None:
        return session.execute(
            sa.text("SELECT count(*) FROM (SELECT 1 FROM models_fts WHERE models_fts MATCH :q LIMIT :cap)"),
            {"q": fts_query(query), "cap": int(cap)},
        ).scalar()
    hits = sa.text("SELECT name FROM models_fts WHERE models_fts MATCH :q").columns(name=sa.String)
    hits = hits.bindparams(q=fts_query(query)).subquery()
    rows = sa.select(sa.literal(1)).select_from(ModelRow).join(hits, hits.c.name == ModelRow.name)
    rows = rows.where(visible).limit(int(cap)).subquery()
    return session.scalar(sa.select(sa.func.count()).select_from(rows))


def match(stmt, bind, query, depth=None, tiered=False, sort=None):
    """``stmt`` (a SELECT of :class:`ModelRow`) narrowed to the rows matching ``query``, and the
    ranks to order them by (lower is better; ``[]`` when the query has no words). ``depth`` and
    ``tiered``: as :func:`.index.search_query` explains."""
    words = query_words(query)
    ranks = []
    if not words:
        return stmt, ranks
    if uses_fts5(bind):
        q = fts_query(query)
        first = "{words title tags} : (" + q + ")"
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
    return stmt, ranks


def _substring_search(stmt, words):
    """The FTS5 fallback: every word a case-insensitive substring of the searched fields (the name too).

    Returns the filtered statement and a rank (lower is better: more words in the title).
    """
    fields = (ModelRow.name, ModelRow.title, ModelRow.summary, ModelRow.description, ModelRow.tags)
    in_title = []
    for word in words:
        word = word.lower()
        stmt = stmt.where(sa.or_(*(sa.func.instr(sa.func.lower(f), word) > 0 for f in fields)))
        in_title.append(sa.case((sa.func.instr(sa.func.lower(ModelRow.title), word) > 0, 1), else_=0))
    return stmt, -sum(in_title[1:], in_title[0])
