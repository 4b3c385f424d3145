"""Notebook tests never touch the user's catalog: ``$DEEPVRE_MARKET_DIR`` is a temp folder for the
session (tests/conftest.py's ``private_state``)."""
