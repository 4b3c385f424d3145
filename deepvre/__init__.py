"""deepvre: a virtual research environment for deep learning in science."""

# Load Python's sqlite3 before anything can import TensorFlow: TensorFlow's libtensorflow_cc carries
# its own SQLite without FTS5 and loads it RTLD_GLOBAL, and _sqlite3 binds to whichever came first.
import sqlite3  # noqa: F401,E402

__version__ = "0.1.0"
