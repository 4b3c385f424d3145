"""Parameters given as text are parsed by the notebook's declared types; unknown names are refused."""

import pytest

from deepvre.runs.parameters import (
    ParameterError,
    coerce,
    declared_parameters,
    from_inspection,
)


def test_declared_types_come_from_annotations_and_default_literals(notebook):
    declared = declared_parameters(notebook("metrics"))
    assert {k: v["type"] for k, v in declared.items()} == {
        "a": "int", "scale": "float", "label": "str", "smoke": "bool", "layers": "list",
        "output_dir": "str",
    }
    assert declared["a"]["default"] == 1 and declared["a"]["help"] == "an integer"


def test_values_are_parsed_by_type(notebook):
    declared = declared_parameters(notebook("metrics"))
    got = coerce(declared, {"a": "3", "scale": "0.5", "label": "7", "smoke": "false",
                            "layers": "[3, 4, 5]"})
    assert got == {"a": 3, "scale": 0.5, "label": "7", "smoke": False, "layers": [3, 4, 5]}


def test_python_values_pass_through():
    declared = from_inspection({"a": {"inferred_type_name": "None", "default": "1"}})
    assert coerce(declared, {"a": 5}) == {"a": 5}


@pytest.mark.parametrize("name,text,expected", [
    ("a", "x", "integer"), ("a", "1.5", "integer"), ("scale", "fast", "number"),
    ("smoke", "maybe", "boolean"), ("layers", "3", "list"),
])
def test_wrong_type_names_the_parameter(notebook, name, text, expected):
    declared = declared_parameters(notebook("metrics"))
    with pytest.raises(ParameterError, match=f"'{name}' expects .*{expected}"):
        coerce(declared, {name: text})


def test_unknown_name_is_an_error_unless_allowed(notebook):
    declared = declared_parameters(notebook("metrics"))
    with pytest.raises(ParameterError, match="unknown parameter.*epochs.*declares: a, label"):
        coerce(declared, {"epochs": "3"})
    assert coerce(declared, {"epochs": "3"}, allow_unknown=True) == {"epochs": 3}


def test_untyped_default_reads_yaml():
    declared = from_inspection({"x": {"inferred_type_name": "None", "default": "None"},
                                "p": {"inferred_type_name": "None", "default": "Path('a')"}})
    assert coerce(declared, {"x": "2.5", "p": "b"}) == {"x": 2.5, "p": "b"}
