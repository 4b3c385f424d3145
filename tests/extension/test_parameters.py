"""Notebook parameters: papermill's inspection as a form, values checked, parameterized copies."""

import nbformat
import pytest

from deepvre.server import parameters

from .conftest import make_notebook


def test_form_fields_from_papermill_inspection(tmp_path):
    fields = parameters.inspect(str(make_notebook(tmp_path / "nb.ipynb")))
    by_name = {f["name"]: f for f in fields}
    assert [f["name"] for f in fields] == ["epochs", "learning_rate", "label", "augment"]
    assert (by_name["epochs"]["kind"], by_name["epochs"]["value"]) == ("int", 2)
    assert (by_name["learning_rate"]["kind"], by_name["learning_rate"]["value"]) == ("float", 0.01)
    assert (by_name["label"]["kind"], by_name["label"]["value"]) == ("str", "cells")
    assert (by_name["augment"]["kind"], by_name["augment"]["value"]) == ("bool", False)


def test_expression_defaults_have_no_value():
    fields = parameters.form_fields({"n": {"name": "n", "inferred_type_name": "None",
                                           "default": "os.cpu_count()", "help": ""}})
    assert fields[0]["kind"] == "any" and fields[0]["value"] is None


def test_check_values_converts_and_rejects():
    fields = parameters.form_fields({
        "epochs": {"inferred_type_name": "int", "default": "2"},
        "lr": {"inferred_type_name": "float", "default": "0.1"},
    })
    assert parameters.check_values(fields, {"lr": 1}) == {"lr": 1.0}
    with pytest.raises(parameters.ParameterError, match="unknown parameter.*bogus"):
        parameters.check_values(fields, {"bogus": 1})
    with pytest.raises(parameters.ParameterError, match="'epochs' must be int"):
        parameters.check_values(fields, {"epochs": "three"})
    with pytest.raises(parameters.ParameterError, match="'epochs' must be int"):
        parameters.check_values(fields, {"epochs": True})


def test_write_parameterized_injects_and_keeps_lineage(tmp_path):
    src = make_notebook(tmp_path / "src.ipynb")
    dest = tmp_path / "out.ipynb"
    parameters.write_parameterized(str(src), str(dest), {"epochs": 5}, {"model": "m", "version": "1.0"})
    nb = nbformat.read(str(dest), as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "epochs = 5" in injected[0].source
    assert parameters.lineage_of(str(dest)) == {"model": "m", "version": "1.0"}
    with pytest.raises(FileExistsError):
        parameters.write_parameterized(str(src), str(dest), {}, None)


def test_bytes_are_inspected_and_parameterized_as_the_file_is(tmp_path):
    """A notebook's bytes, read once (what the trust check hashed), give what its path gives."""
    src = make_notebook(tmp_path / "src.ipynb")
    data = src.read_bytes()
    assert parameters.inspect(data) == parameters.inspect(str(src))
    parameters.write_parameterized(str(src), str(tmp_path / "a.ipynb"), {"epochs": 5}, {"model": "m"})
    parameters.write_parameterized(data, str(tmp_path / "b.ipynb"), {"epochs": 5}, {"model": "m"})
    a, b = (nbformat.read(str(tmp_path / f), as_version=4) for f in ("a.ipynb", "b.ipynb"))
    for nb in (a, b):
        for cell in nb.cells:
            cell.pop("id", None)  # the injected cell's id is random
    assert a == b
