"""Search matches model names and tags (issue 17: "Search does not match model names"), on every
index backend, and a catalog indexed by an earlier version is re-indexed with the names."""

import pytest

from deepvre.market.catalog import Caller

BACKENDS = ["sqlite", "sqlite-nofts", "postgresql"]


def names(catalog, query):
    return [h["name"] for h in catalog.search(Caller("bob"), query)]


@pytest.mark.parametrize("catalog", BACKENDS, indirect=True)
def test_a_models_name_and_its_words_find_it(publish, catalog):
    # neither title, summary, description nor tags say "effnet", "v2" or "cellpose"
    publish(name="effnet-v2-places", title="Scene base", summary="A base model.", tags=["scenes"])
    publish(name="cellpose-nuclei", title="Nuclei finder", summary="Finds nuclei.", tags=["biology"])
    assert names(catalog, "effnet") == ["effnet-v2-places"]
    assert names(catalog, "effnet-v2-places") == ["effnet-v2-places"]
    assert names(catalog, "v2 places") == ["effnet-v2-places"]
    assert names(catalog, "cellpose") == ["cellpose-nuclei"]
    assert names(catalog, "biology") == ["cellpose-nuclei"]  # a tag
    assert names(catalog, "nothingsuch") == []


def test_a_name_outranks_the_description(publish, catalog):
    publish(name="plankton-counter", title="Counter", summary="Counts.", description="sorts small organisms")
    publish(name="water-sorter", title="Sorter", summary="Sorts.", description="plankton " * 3 + "in water")
    assert names(catalog, "plankton") == ["plankton-counter", "water-sorter"]


def test_an_index_from_an_earlier_version_is_rebuilt_with_the_names(publish, catalog, tmp_path):
    import sqlalchemy as sa

    from deepvre.market.catalog import Catalog

    publish(name="effnet-v2-places", title="Scene base", summary="A base model.", tags=["scenes"])
    with catalog.engine.begin() as conn:  # the table as deepvre made it before: names not searched
        conn.exec_driver_sql("DROP TABLE models_fts")
        conn.exec_driver_sql("CREATE VIRTUAL TABLE models_fts USING fts5("
                             "name UNINDEXED, title, summary, description, tags, tokenize='porter unicode61')")
        conn.exec_driver_sql("INSERT INTO models_fts(name, title, summary, description, tags) "
                             "VALUES ('effnet-v2-places', 'Scene base', 'A base model.', '', 'scenes')")
    catalog.engine.dispose()
    reopened = Catalog(database_url=catalog.database_url, store_url=catalog.store_url)
    try:
        assert names(reopened, "effnet") == ["effnet-v2-places"]
        assert names(reopened, "scenes") == ["effnet-v2-places"]
        with reopened.engine.connect() as conn:
            columns = [row[1] for row in conn.execute(sa.text("PRAGMA table_info(models_fts)"))]
        assert "words" in columns
    finally:
        reopened.engine.dispose()
