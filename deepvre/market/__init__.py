"""The model marketplace: metadata, content-addressed store, index, catalog, hub service, client.

``import deepvre`` loads ``sqlite3`` before TensorFlow can bring its own SQLite without FTS5; a
process that imported TensorFlow first still searches, through the index's substring fallback.
"""
