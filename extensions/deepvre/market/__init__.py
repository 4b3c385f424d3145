"""The model marketplace: metadata, content-addressed store, index, catalog, hub service, client.

``sqlite3`` is imported here on purpose, before anything can import TensorFlow: TensorFlow
bundles its own SQLite without FTS5, and whichever library loads first wins for the process.
"""

import sqlite3  # noqa: F401  (see above)
