"""The errors every part of deepvre raises for a caller's mistake, and their one HTTP status.

The catalog, the marketplace service and its client, the run store and the server extension
all raise these (or subclasses), so a status is chosen in one place (:func:`http_status`) and a
client turns it back into the same class (:func:`for_status`):

    try:
        catalog.show(caller, "other-users-model")
    except NotFound:                 # 404 from the service, NotFound again in the client
        ...

Anything else (a bug, a disk error) is no caller's mistake: 500, logged with its traceback.
"""

__all__ = ["BUILTINS", "Conflict", "DeepvreError", "Forbidden", "Invalid", "NotFound", "TooLarge",
           "Unauthenticated", "Unavailable", "for_status", "http_status"]


class DeepvreError(Exception):
    """A caller's mistake, with a message meant for that caller."""

    status = 400


class Invalid(DeepvreError, ValueError):
    """Wrong input: a parameter, a path, a settings value, a metadata document."""

    status = 400


class Unauthenticated(DeepvreError, PermissionError):
    """No credentials, or ones nobody issued."""

    status = 401


class Forbidden(DeepvreError, PermissionError):
    """The caller sees the thing but may not do this to it."""

    status = 403


class NotFound(DeepvreError, LookupError):
    """No such thing, or one the caller may not see (the same answer, on purpose)."""

    status = 404


class Conflict(DeepvreError, ValueError):
    """The thing exists already, or is in a state that refuses this (a published version)."""

    status = 409


class TooLarge(Invalid):
    """An upload over its limit, counted after expansion."""

    status = 413


class Unavailable(DeepvreError, ConnectionError):
    """A service this one needs is missing or does not answer, e.g. the hub's marketplace from a
    user's server (no private fallback: the caller must know)."""

    status = 503


# Plain Python errors that mean the same where a caller's input reaches them (a path the caller
# named, a key they chose). A service whose disk and lookups are its own passes fewer: there a
# FileNotFoundError or a KeyError is its fault, a 500.
BUILTINS = ((FileExistsError, 409), (FileNotFoundError, 404), (LookupError, 404),
            (PermissionError, 403), (ValueError, 400))

_CLASSES = {cls.status: cls for cls in (Invalid, Unauthenticated, Forbidden, NotFound, Conflict, TooLarge)}


def http_status(err, builtins=BUILTINS):
    """The HTTP status for ``err``, or None when it is not a caller's mistake (a 500).

    A :class:`DeepvreError` answers its ``status``; a plain Python error the first status of
    ``builtins`` (``(class, status)`` pairs, most specific first) it is an instance of.
    """
    if isinstance(err, DeepvreError):
        return err.status
    for kind, status in builtins:
        if isinstance(err, kind):
            return status
    return None


def for_status(status):
    """The class a client raises for an error answer: one of the above (422, unprocessable
    input, is :class:`Invalid`), RuntimeError for any other status."""
    if status == 422:
        return Invalid
    return _CLASSES.get(status, RuntimeError)
