"""The index in processes that imported TensorFlow first (its SQLite has no FTS5)."""

import json
import os
import subprocess
import sys
import textwrap

from deepvre.market.catalog import Caller

QUERIES = ["nuclei", "fluoresc", "zeek flows", "colour", "nothing-like-this"]

# Run in a fresh interpreter, TensorFlow first as in a notebook; prints what it found as JSON.
TF_FIRST = textwrap.dedent("""
    import json, logging, sys
    import tensorflow  # first, as notebooks do
    logging.basicConfig(level=logging.WARNING)
    from deepvre.market import fulltext, index, tables
    from deepvre.market.catalog import Caller, Catalog
    from tests.market.conftest import artifact_files, make_document
    from pathlib import Path

    db, store, model_dir, queries = sys.argv[1], sys.argv[2], Path(sys.argv[3]), json.loads(sys.argv[4])
    catalog = Catalog(database_url=db, store_url=store)
    out = {"fts5": fulltext.fts5_available()}
    for who in ("bob", "carol"):
        caller = Caller(who, ("lab",) if who == "carol" else ())
        out[who] = {q: [h["name"] for h in catalog.search(caller, q)] for q in queries}
    out["filtered"] = [h["name"] for h in catalog.search(Caller("bob"), "nuclei", filters={"task": "Computer Vision"})]
    doc = make_document(name="late-retina", title="Retina grading", summary="Published without FTS5")
    catalog.publish(doc, artifact_files(model_dir), "dave")
    out["late"] = [h["name"] for h in catalog.search(Caller("bob"), "retina")]
    print("RESULT " + json.dumps(out))
""")


def run_python(code, *args):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=root, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300, env=env, cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_tensorflow_first_searches_with_fallback(publish, catalog, tiny_model_dir):
    publish("alice", name="cell-nuclei", title="Nuclei segmentation", summary="Finds nuclei in fluorescence images",
            tags=["biology"], tasks=["Computer Vision"])
    publish("alice", name="lab-nuclei", title="Lab nuclei", summary="Group only", visibility="group", groups=["lab"])
    publish("alice", name="secret-nuclei", title="Secret nuclei", summary="Private", visibility="private")
    publish("bob", name="flow-anomalies", title="Network flow anomalies", summary="Scores Zeek conn.log flows",
            tags=["security"], tasks=["Anomaly Detection"])
    publish("alice")
    callers = {"bob": Caller("bob"), "carol": Caller("carol", ("lab",))}
    expected = {who: {q: sorted(h["name"] for h in catalog.search(c, q)) for q in QUERIES} for who, c in callers.items()}
    proc = run_python(TF_FIRST, catalog.database_url, catalog.store_url, str(tiny_model_dir), json.dumps(QUERIES))
    out = json.loads(proc.stdout.split("RESULT ", 1)[1])
    assert out["fts5"] is False  # the test means something only if TensorFlow really shadowed SQLite
    assert "has no FTS5" in proc.stderr and "falls back" in proc.stderr
    # the same answers, visibility included, as this process's FTS5 gives
    for who in callers:
        assert {q: sorted(v) for q, v in out[who].items()} == expected[who]
    assert sorted(out["bob"]["nuclei"]) == ["cell-nuclei"]
    assert sorted(out["carol"]["nuclei"]) == ["cell-nuclei", "lab-nuclei"]
    assert out["filtered"] == ["cell-nuclei"]
    assert out["late"] == ["late-retina"]
    # what it published is in FTS5 for processes that have it
    assert [h["name"] for h in catalog.search("bob", "retina grading")] == ["late-retina"]


def test_import_deepvre_first_keeps_fts5():
    proc = run_python("import deepvre, tensorflow\nfrom deepvre.market import fulltext\nprint('FTS5', fulltext.fts5_available())")
    assert "FTS5 True" in proc.stdout



def bulk_rows(catalog, count, rare_every):
    """``count`` index rows that all match "common"; every ``rare_every``-th has use case "rare"
    and a long description, so that it ranks below the others."""
    import sqlalchemy as sa

    from deepvre.market import fulltext, tables

    rows = [dict(name=f"bulk-{i:04d}", owner="alice", visibility="public", deprecated=i % 7 == 0, latest="1.0.0",
                 title="Common model", summary="common words", tags="common",
                 description=("common " + "filler " * 300) if i % rare_every == 0 else "common",
                 use_case="rare" if i % rare_every == 0 else "base", tasks="[]", libraries="[]", categories="[]",
                 updated=tables.now().replace(microsecond=i))
            for i in range(count)]
    with catalog.Session.begin() as session:
        session.execute(sa.insert(tables.ModelRow), rows)
        for row in session.scalars(sa.select(tables.ModelRow)):
            fulltext.index_row(session, row)
    return rows


def test_ranked_search_past_the_depth_is_exact(catalog):
    rows = bulk_rows(catalog, 450, rare_every=50)  # 450 hits: more than the 200 ranked first
    expected = sorted(r["name"] for r in rows if r["use_case"] == "rare" and not r["deprecated"])
    hits = catalog.search(Caller("bob"), "common", filters={"use_case": "rare"}, limit=20)
    assert sorted(h["name"] for h in hits) == expected
    assert "description" not in hits[0]  # entries are summaries; show() has the description


def test_listings_walk_an_index_in_order(catalog):
    import sqlalchemy as sa

    from deepvre.market import index

    rows = bulk_rows(catalog, 120, rare_every=10)
    visible = [r for r in rows if not r["deprecated"]]
    newest = sorted(visible, key=lambda r: (r["updated"], r["name"]), reverse=True)
    hits = catalog.search(Caller("bob"), sort="updated", limit=10, offset=5)
    assert [h["name"] for h in hits] == [r["name"] for r in newest[5:15]]
    hits = catalog.search(Caller("bob"), sort="-name", limit=3)
    assert [h["name"] for h in hits] == sorted((r["name"] for r in visible), reverse=True)[:3]
    with catalog.Session() as session:
        for sort in ("updated", "-updated", "name", "-created", "title"):
            stmt = index.search_query(session, Caller("bob", ("lab",)), "", {}, sort, 20, 40)
            sql = str(stmt.compile(dialect=catalog.engine.dialect, compile_kwargs={"literal_binds": True}))
            plan = " | ".join(row[3] for row in session.execute(sa.text("EXPLAIN QUERY PLAN " + sql)))
            # the page is read in index order, not by sorting every visible row
            assert "TEMP B-TREE" not in plan and "ix_models_listing" in plan, (sort, plan)


def test_title_and_tags_outrank_the_description(catalog):
    import sqlalchemy as sa

    from deepvre.market import fulltext, tables

    texts = {  # name: (title, tags, description)
        "in-description": ("Cell counter", "biology", "plankton " * 3 + "counts cells in water samples"),
        "in-title": ("Plankton classifier", "biology", "sorts images of small organisms"),
        "in-tags": ("Image sorter", "plankton", "sorts images of small organisms"),
    }
    rows = [dict(name=name, owner="alice", visibility="public", deprecated=False, latest="1.0.0", title=title,
                 summary="a model", tags=tags, description=description, use_case="biology", tasks="[]",
                 libraries="[]", categories="[]") for name, (title, tags, description) in texts.items()]
    with catalog.Session.begin() as session:
        session.execute(sa.insert(tables.ModelRow), rows)
        for row in session.scalars(sa.select(tables.ModelRow)):
            fulltext.index_row(session, row)
    hits = [h["name"] for h in catalog.search(Caller("bob"), "plankton plankton")]  # a repeated word counts once
    assert hits == ["in-title", "in-tags", "in-description"]


def test_broad_query_pages_equal_the_full_ranking(catalog, monkeypatch):
    """A broad query ranks only the best hits of its first tier (title or tags); every page
    must still be the page of the full ranking, also where it runs into the second tier."""
    import random

    from deepvre.market import catalog as catalog_module

    monkeypatch.setattr(catalog_module, "BROAD", 200)  # 500 hits, about 250 of them visible to bob: broad

    import sqlalchemy as sa

    from deepvre.market import fulltext, index, tables

    rng = random.Random(3)
    rows = []
    for i in range(500):
        in_title = i % 4 == 0  # 125 in the first part, fewer than the depth of 200
        rows.append(dict(name=f"broad-{i:03d}", owner="alice", visibility=rng.choice(["public", "private"]),
                         deprecated=False, latest="1.0.0", title="Lattice gauge" if in_title else "Gauge model",
                         summary="a model", tags="physics", use_case="lattice-qcd", tasks="[]", libraries="[]",
                         categories="[]", description=" ".join(rng.choices(["lattice", "filler", "words"], k=rng.randint(5, 60)))
                         + " lattice"))
    with catalog.Session.begin() as session:
        session.execute(sa.insert(tables.ModelRow), rows)
        for row in session.scalars(sa.select(tables.ModelRow)):
            fulltext.index_row(session, row)
    bob = Caller("bob")
    with catalog.Session() as session:
        full = [r.name for r in session.scalars(index.search_query(session, bob, "lattice", limit=1000, tiered=True))]
    first = sum(1 for r in rows if r["title"].startswith("Lattice") and r["visibility"] == "public")
    assert len(full) == sum(1 for r in rows if r["visibility"] == "public") and 0 < first < len(full)
    assert all(name in {r["name"] for r in rows if r["title"].startswith("Lattice")} for name in full[:first])
    for offset in (0, 20, first - 10, first, 220, 400):
        page = [h["name"] for h in catalog.search(bob, "lattice", limit=20, offset=offset)]
        assert page == full[offset:offset + 20], offset
