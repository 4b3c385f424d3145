"""One error hierarchy (issue 14): each error's HTTP status is chosen in ``deepvre.errors``, the
marketplace client turns a status back into the class, and the server extension and the
marketplace service answer the same status for the same error."""

import pytest

from deepvre import errors
from deepvre.errors import (
    Conflict,
    DeepvreError,
    Forbidden,
    Invalid,
    NotFound,
    TooLarge,
    Unauthenticated,
    for_status,
    http_status,
)

CLASSES = [(Invalid, 400), (Unauthenticated, 401), (Forbidden, 403), (NotFound, 404), (Conflict, 409),
           (TooLarge, 413)]


@pytest.mark.parametrize("cls, status", CLASSES)
def test_each_class_has_its_status(cls, status):
    assert http_status(cls("no")) == status


@pytest.mark.parametrize("cls, builtin", [(Invalid, ValueError), (Unauthenticated, PermissionError),
                                          (Forbidden, PermissionError), (NotFound, LookupError),
                                          (Conflict, ValueError), (TooLarge, ValueError)])
def test_each_class_is_still_the_builtin_callers_catch(cls, builtin):
    assert issubclass(cls, builtin) and issubclass(cls, DeepvreError)


@pytest.mark.parametrize("err, status", [
    (FileExistsError("x"), 409), (FileNotFoundError("x"), 404), (KeyError("x"), 404), (LookupError("x"), 404),
    (PermissionError("x"), 403), (ValueError("x"), 400), (RuntimeError("x"), None), (OSError("disk"), None),
    (TypeError("bug"), None),
])
def test_builtins(err, status):
    assert http_status(err) == status


def test_fewer_builtins_make_the_rest_a_500():
    assert http_status(KeyError("x"), ()) is None
    assert http_status(NotFound("x"), ()) == 404


@pytest.mark.parametrize("cls, status", CLASSES)
def test_client_round_trip(cls, status):
    assert for_status(http_status(cls("no"))) is cls


@pytest.mark.parametrize("status", [422, 500, 502, 418])
def test_client_other_statuses(status):
    assert for_status(status) is (Invalid if status == 422 else RuntimeError)


def the_project_errors():
    """One of every error the parts raise, with the status both web layers must answer."""
    from deepvre.market import contract, metadata, store
    from deepvre.pipelines import lattice_io, manifest
    from deepvre.runs.store import RunNotFound
    from deepvre.site import settings, slurm_terms
    from deepvre_jupyter import paths

    return [
        (metadata.MetadataError(["name: required"]), 422), (contract.BadRequest(["limit: too big"]), 400),
        (store.UploadTooLarge("big"), 413), (paths.PathError("../x"), 400), (RunNotFound("r1"), 404),
        (manifest.OutputError("out"), 400), (lattice_io.GaugeFormatError("f"), 400),
        (settings.SettingsError(["k: bad"]), 400), (slurm_terms.SlurmSettingsError("s"), 400),
        *[(cls("x"), status) for cls, status in CLASSES if cls is not Unauthenticated],
        (FileExistsError("x"), 409), (ValueError("x"), 400),
    ]


def test_the_project_errors_map_to_their_status():
    for err, status in the_project_errors():
        assert http_status(err) == status, type(err)


def test_server_extension_and_service_agree():
    from deepvre.market import handlers as market
    from deepvre_jupyter import handlers as server

    for err, status in the_project_errors():
        assert server.api_status(err) == market.api_status(err) == status, type(err)


def test_where_they_differ_on_purpose():
    from deepvre.market import handlers as market
    from deepvre.market import store
    from deepvre_jupyter import handlers as server

    damaged = store.IntegrityError("artifact changed")
    assert market.api_status(damaged) == 500 and server.api_status(damaged) is None  # both a 500
    # a KeyError or a missing file inside the service is its own fault; in the server extension,
    # the caller named it
    assert market.api_status(KeyError("x")) is None and server.api_status(KeyError("x")) == 404
    # the marketplace refusing the server's token: the browser is logged in, the server may not
    assert server.api_status(Unauthenticated("token")) == 403


def test_errors_imports_nothing_of_deepvre():
    import ast
    from pathlib import Path

    tree = ast.parse(Path(errors.__file__).read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
