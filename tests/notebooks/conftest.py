"""Notebook tests never touch the user's catalog: ``$DEEPVRE_MARKET_DIR`` is a temp folder for the session."""

from .smoke import private_market  # noqa: F401  (autouse, session scope)
