"""The one notebook-parameters module: inspection, types, the text parser, the checker, injection.

The CLI, the panel's handlers, the widgets and DEEPaaS ``train`` all use these functions.
"""

import nbformat
import pytest

from deepvre.errors import Invalid
from deepvre.runs import parameters
from deepvre.runs.parameters import ParameterError, as_text, check, field, from_texts, inject, inspect, parse


def make_notebook(path):
    """A notebook like the panel's: four parameters of four types."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cell = nbformat.v4.new_code_cell('epochs = 2\nlearning_rate = 0.01\nlabel = "cells"\naugment = False\n')
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# Fine-tune"), cell, nbformat.v4.new_code_cell("print(epochs)")]
    nbformat.write(nb, str(path))
    return path


def declare(**types):
    """``{name: field}`` from ``name=(papermill's type name, default source text)``."""
    return {name: field(name, kind, default) for name, (kind, default) in types.items()}


# -- inspection and types -------------------------------------------------------------------

def test_types_come_from_annotations_and_default_literals(notebook):
    declared = inspect(notebook("metrics"))
    assert list(declared) == ["a", "scale", "label", "smoke", "layers", "output_dir"]  # the cell's order
    assert {k: f["type"] for k, f in declared.items()} == {
        "a": "int", "scale": "float", "label": "str", "smoke": "bool", "layers": "list", "output_dir": "str",
    }
    assert {k: f["kind"] for k, f in declared.items()} == {
        "a": "int", "scale": "float", "label": "str", "smoke": "bool", "layers": "json", "output_dir": "str",
    }
    a = declared["a"]
    assert (a["name"], a["default"], a["value"], a["help"]) == ("a", "1", 1, "an integer")


def test_untyped_and_expression_defaults_take_any_value():
    declared = declare(x=("None", "None"), n=("None", "os.cpu_count()"), p=("None", "Path('a')"))
    assert {k: (f["type"], f["kind"], f["value"]) for k, f in declared.items()} == {
        "x": ("None", "any", None), "n": ("None", "any", None), "p": ("None", "any", None)}
    assert declared["n"]["default"] == "os.cpu_count()"  # the source text, for the form to show


def test_typing_generics_count_as_their_container():
    declared = declare(ids=("List[int]", "[1]"), opts=("dict[str, int]", "{}"), maybe=("Optional[int]", "None"))
    assert {k: f["type"] for k, f in declared.items()} == {"ids": "list", "opts": "dict", "maybe": "Optional"}
    assert declared["maybe"]["kind"] == "any"


def test_bytes_are_inspected_as_the_file_is(tmp_path):
    """A notebook's bytes, read once (what the trust check hashed), give what its path gives."""
    src = make_notebook(tmp_path / "src.ipynb")
    assert inspect(src.read_bytes()) == inspect(str(src)) == inspect(src)
    assert [f["kind"] for f in inspect(src).values()] == ["int", "float", "str", "bool"]


# -- the text parser ------------------------------------------------------------------------

def test_texts_are_parsed_by_type(notebook):
    declared = inspect(notebook("metrics"))
    got = from_texts(declared, {"a": "3", "scale": "0.5", "label": "7", "smoke": "false", "layers": "[3, 4, 5]"})
    assert got == {"a": 3, "scale": 0.5, "label": "7", "smoke": False, "layers": [3, 4, 5]}
    assert from_texts(declared, {"smoke": "YES", "label": "'quoted'"}) == {"smoke": True, "label": "'quoted'"}


def test_untyped_and_unknown_texts_read_as_yaml():
    declared = declare(x=("None", "None"), p=("None", "Path('a')"))
    assert from_texts(declared, {"x": "2.5", "p": "b", "other": "[1, 2]"}) == {"x": 2.5, "p": "b", "other": [1, 2]}


@pytest.mark.parametrize("name,text,expected", [
    ("a", "x", "an integer"), ("a", "1.5", "an integer"), ("scale", "fast", "a number"),
    ("smoke", "maybe", "a boolean"), ("x", "[unclosed", "a YAML value"),
])
def test_bad_text_names_the_parameter_and_the_type(name, text, expected):
    declared = declare(a=("int", "1"), scale=("float", "1.0"), smoke=("bool", "True"), x=("None", "None"))
    with pytest.raises(ParameterError) as err:
        parse(declared[name], name, text)
    assert str(err.value).startswith(f"parameter '{name}' must be {expected}")
    assert str(err.value).endswith(f", not '{text}'")


def test_as_text_is_what_the_parser_reads_back(notebook):
    declared = inspect(notebook("metrics"))
    texts = {name: as_text(f) for name, f in declared.items()}
    assert texts == {"a": "1", "scale": "2.0", "label": "base", "smoke": "true", "layers": "[1, 2]",
                     "output_dir": ""}
    assert from_texts(declared, texts) == {name: f["value"] for name, f in declared.items()}
    assert as_text(field("n", None, "os.cpu_count()")) == ""


# -- the checker ----------------------------------------------------------------------------

def test_values_are_checked_and_converted():
    declared = declare(epochs=("int", "2"), lr=("float", "0.1"), layers=("list", "[1]"), x=("None", "None"))
    assert check(declared, {"lr": 1}) == {"lr": 1.0}
    assert check(declared, {"epochs": 3, "layers": (1, 2), "x": {"any": "thing"}}) == {
        "epochs": 3, "layers": [1, 2], "x": {"any": "thing"}}
    # a string for a number (DEEPaaS's JSON, a form) is read as its text; an untyped one stays a string
    assert check(declared, {"epochs": "3", "lr": "0.5", "x": "yes"}) == {"epochs": 3, "lr": 0.5, "x": "yes"}


@pytest.mark.parametrize("values,message", [
    ({"epochs": "three"}, "parameter 'epochs' must be an integer, not 'three'"),
    ({"epochs": True}, "parameter 'epochs' must be an integer, not True"),
    ({"epochs": 1.5}, "parameter 'epochs' must be an integer, not 1.5"),
    ({"lr": [1]}, "parameter 'lr' must be a number, not [1]"),
    ({"layers": "3"}, "parameter 'layers' must be a list (YAML/JSON, e.g. [1, 2]), not '3'"),
    ({"label": 3}, "parameter 'label' must be a string, not 3"),
    (["epochs"], "parameters must be an object of name: value"),
])
def test_wrong_values_are_named(values, message):
    declared = declare(epochs=("int", "2"), lr=("float", "0.1"), layers=("list", "[1]"), label=("str", "'a'"))
    with pytest.raises(ParameterError) as err:
        check(declared, values)
    assert str(err.value) == message


def test_unknown_names_are_refused_unless_allowed(notebook):
    declared = inspect(notebook("metrics"))
    with pytest.raises(ParameterError, match="unknown parameter.*epochs.*declares: a, label") as err:
        check(declared, {"epochs": 3, "a": 1})
    assert err.value.unknown == ["epochs"]
    assert check(declared, {"epochs": 3}, allow_unknown=True) == {"epochs": 3}
    with pytest.raises(ParameterError, match=r"declares: none \(no cell tagged 'parameters'\)"):
        check({}, {"epochs": 3})


def test_the_error_is_the_shared_invalid_a_400():
    assert issubclass(ParameterError, Invalid) and issubclass(ParameterError, ValueError)
    assert ParameterError("x").status == 400
    from deepvre import runs

    assert runs.ParameterError is ParameterError


# -- the injection --------------------------------------------------------------------------

def _injected(path):
    nb = nbformat.read(str(path), as_version=4)
    return [c.source for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]


def test_inject_writes_a_new_file_with_its_lineage(tmp_path):
    src = make_notebook(tmp_path / "src.ipynb")
    dest = tmp_path / "out.ipynb"
    inject(str(src), str(dest), {"epochs": 5}, {"model": "m", "version": "1.0"})
    (cell,) = _injected(dest)
    assert "epochs = 5" in cell
    assert parameters.lineage_of(str(dest)) == {"model": "m", "version": "1.0"}
    assert parameters.lineage_of(str(src)) == {} and parameters.lineage_of(str(tmp_path / "none")) == {}
    with pytest.raises(FileExistsError):
        inject(str(src), str(dest), {}, None)


def test_inject_replaces_in_place_with_one_cell(tmp_path):
    path = make_notebook(tmp_path / "nb.ipynb")
    inject(str(path), str(path), {"epochs": 5}, replace=True)
    inject(str(path), str(path), {"epochs": 6}, replace=True)
    (cell,) = _injected(path)  # the injected cell is replaced, not added again
    assert "epochs = 6" in cell and "epochs = 5" not in cell


def test_bytes_are_parameterized_as_the_file_is(tmp_path):
    src = make_notebook(tmp_path / "src.ipynb")
    inject(str(src), str(tmp_path / "a.ipynb"), {"epochs": 5}, {"model": "m"})
    inject(src.read_bytes(), str(tmp_path / "b.ipynb"), {"epochs": 5}, {"model": "m"})
    a, b = (nbformat.read(str(tmp_path / f), as_version=4) for f in ("a.ipynb", "b.ipynb"))
    for nb in (a, b):
        for cell in nb.cells:
            cell.pop("id", None)  # the injected cell's id is random
    assert a == b


def test_a_help_that_lists_choices_makes_a_choice(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cell = nbformat.v4.new_code_cell(
        'cluster: str = "local"  # where Dask runs, one of: local, slurm or kubernetes (see the docs)\n'
        "size: int = 32  # one of: 32, 64, 96\n"
        'note: str = "x"  # one of the notes\n')
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell]
    nbformat.write(nb, str(tmp_path / "c.ipynb"))
    declared = inspect(tmp_path / "c.ipynb")
    assert (declared["cluster"]["kind"], declared["cluster"]["choices"]) == ("choice", ["local", "slurm", "kubernetes"])
    assert (declared["size"]["kind"], declared["size"]["choices"]) == ("choice", [32, 64, 96])
    assert declared["note"]["kind"] == "str" and "choices" not in declared["note"]  # no "one of:" list
    assert check(declared, {"cluster": "slurm", "size": "64"}) == {"cluster": "slurm", "size": 64}
    with pytest.raises(ParameterError, match="'cluster' must be one of 'local', 'slurm', 'kubernetes', not 'k8s'"):
        check(declared, {"cluster": "k8s"})
    with pytest.raises(ParameterError, match="'size' must be one of 32, 64, 96, not 48"):
        check(declared, {"size": 48})
    assert parameters.choices_of("one of: 0.5, 1.0.", "float") == [0.5, 1.0]
    assert parameters.choices_of("one of: a, b", "list") is None and parameters.choices_of("one of: a", "str") is None
