"""Every ``DEEPVRE_*`` environment variable is declared once, in ``deepvre.site.environment`` (issue 14).

The sources of both packages (and binder/postBuild) are read as text: any ``DEEPVRE_*`` name the
module does not declare fails, as does a direct ``os.environ`` / ``os.getenv`` read of one outside
the module (``REMAINING`` lists the files still to be turned around; it only shrinks).
"""

import re
from pathlib import Path

import pytest

from deepvre.site import environment
from deepvre.site.environment import Environment, declared, markdown_table, variables
from tests.prereqs import REPO

ROOTS = [Path(REPO) / "deepvre", Path(REPO) / "extensions" / "deepvre_jupyter", Path(REPO) / "hub", Path(REPO) / "binder" / "postBuild"]
SUFFIXES = (".py", ".json", ".yaml", ".yml")
SKIP = ("__pycache__", "node_modules", "labextension")
NAME = re.compile(r"\bDEEPVRE_[A-Z0-9_]*[A-Z0-9]\b")
DIRECT_READ = re.compile(r"""(?:environ\.get\(|environ\[|getenv\()\s*["'](DEEPVRE_[A-Z0-9_]+)""")
MODULE = Path(environment.__file__).resolve()

# files that still read a DEEPVRE_* variable straight from os.environ (owned by other work in progress)
REMAINING = set()


def sources():
    """``{path relative to the repo: text}`` of the files the walker reads."""
    found = {}
    for root in ROOTS:
        paths = [root] if root.is_file() else sorted(root.rglob("*"))
        for path in paths:
            if path.is_file() and not any(part in SKIP for part in path.parts) and (
                    path.suffix in SUFFIXES or path == root):
                found[str(path.relative_to(REPO))] = path.read_text(errors="replace")
    return found


def undeclared(texts, names):
    """``{(file, name)}`` of every ``DEEPVRE_*`` name in ``texts`` not in ``names``."""
    return {(path, name) for path, text in texts.items() for name in NAME.findall(text) if name not in names}


def direct_reads(texts):
    """``{file}`` whose code reads a ``DEEPVRE_*`` variable from ``os.environ`` itself."""
    return {path for path, text in texts.items() if path.endswith(".py") and DIRECT_READ.search(text)
            and (Path(REPO) / path).resolve() != MODULE}


def test_every_variable_in_the_sources_is_declared():
    texts = sources()
    assert "deepvre/site/environment.py" in texts and "hub/deepvre_hub/kubernetes.py" in texts
    missing = sorted(undeclared(texts, declared()))
    assert not missing, f"DEEPVRE_* names not declared in deepvre/site/environment.py: {missing}"


def test_no_direct_reads_outside_the_module():
    found = direct_reads(sources())
    assert found == REMAINING, (f"read through deepvre.site.environment.Environment: {sorted(found - REMAINING)}; "
                                f"fixed, remove from REMAINING: {sorted(REMAINING - found)}")


@pytest.mark.parametrize("text, expected", [
    ('env["DEEPVRE_NEW_THING"] = "1"', {("x.py", "DEEPVRE_NEW_THING")}),
    ("# reads $DEEPVRE_RUN_DIRR", {("x.py", "DEEPVRE_RUN_DIRR")}),
    ('os.environ.get("DEEPVRE_RUN_DIR")', set()),
    ("env_keep += DEEPVRE_*", set()),
])
def test_the_walker_sees_an_undeclared_name(text, expected):
    assert undeclared({"x.py": text}, declared()) == expected


def test_the_walker_sees_a_direct_read():
    assert direct_reads({"x.py": 'os.environ.get("DEEPVRE_RUN_DIR")', "y.py": "os.getenv('DEEPVRE_X')",
                         "z.py": "Environment().run_dir"}) == {"x.py", "y.py"}


def test_each_variable_has_a_constant_a_trait_and_help():
    table = declared()
    constants = {value for key, value in vars(environment).items()
                 if key.isupper() and isinstance(value, str) and value.startswith("DEEPVRE_")}
    assert constants == set(table)
    for name, trait in table.items():
        assert trait.name == name.removeprefix("DEEPVRE_").lower()
        assert getattr(environment, name.removeprefix("DEEPVRE_")) == name
        what, _, rest = trait.help.partition(" Set by: ")
        assert what and " Read by: " in rest and trait.metadata["set_by"] and trait.metadata["read_by"], name


def test_values_come_from_the_environment_when_read(monkeypatch):
    monkeypatch.setenv(environment.RUNS_DIR, "/tmp/r1")
    assert Environment().runs_dir == "/tmp/r1"
    monkeypatch.setenv(environment.RUNS_DIR, "/tmp/r2")  # a new instance sees the change
    assert Environment().runs_dir == "/tmp/r2"
    monkeypatch.setenv(environment.RUNS_DIR, "")
    assert Environment().runs_dir is None  # empty counts as unset
    assert Environment({environment.POD_NAME: "jupyter-ana"}).pod_name == "jupyter-ana"
    assert Environment({}).pod_name is None


def test_the_table_hides_secrets():
    rows = {name: value for name, _, value in variables({environment.MARKET_TOKEN: "s3cret",
                                                         environment.RUN_ID: "train-1"})}
    assert set(rows) == set(declared())
    assert rows[environment.MARKET_TOKEN] == environment.HIDDEN
    assert rows[environment.RUN_ID] == "train-1" and rows[environment.RUNS_DIR] == environment.UNSET
    assert "s3cret" not in str(variables({environment.MARKET_TOKEN: "s3cret"}))


def test_hub_check_explain_lists_them(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from deepvre.cli import main

    settings = tmp_path / "settings.yaml"
    settings.write_text("mode: local\n")
    monkeypatch.setenv(environment.SERVE_TOKEN, "s3cret")
    result = CliRunner().invoke(main, ["hub", "check", "--explain", "--settings", str(settings)])
    assert result.exit_code == 0, result.output
    for name in declared():
        assert f"{name} = " in result.output
    assert "s3cret" not in result.output and "settings OK" in result.output


def test_the_docs_list_every_variable():
    """docs/architecture.md holds the table as ``python -m deepvre.site.environment`` prints it."""
    doc = (Path(REPO) / "docs" / "architecture.md").read_text()
    assert markdown_table() in doc, "regenerate the table: python -m deepvre.site.environment"
    for name in declared():
        assert f"`{name}`" in doc


def test_the_declarations_file_and_the_name_constants_must_agree(tmp_path, monkeypatch):
    import yaml

    table = yaml.safe_load(environment.DECLARATIONS.read_text())
    del table["variables"][environment.RUN_DIR]
    table["variables"]["DEEPVRE_NOT_A_CONSTANT"] = {"trait": "x", "help": "", "set_by": "", "read_by": ""}
    changed = tmp_path / "variables.yaml"
    changed.write_text(yaml.safe_dump(table))
    monkeypatch.setattr(environment, "DECLARATIONS", changed)
    with pytest.raises(RuntimeError, match="DEEPVRE_NOT_A_CONSTANT.*DEEPVRE_RUN_DIR"):
        environment._declarations()
