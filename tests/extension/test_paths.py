"""Paths from requests stay inside the root directory."""

import os

import pytest

from deepvre_jupyter import paths


@pytest.fixture
def root(tmp_path):
    (tmp_path / "root" / "sub").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    return tmp_path / "root"


def test_relative_paths_resolve_inside(root):
    assert paths.resolve(str(root), "sub/a.ipynb") == os.path.join(os.path.realpath(root), "sub", "a.ipynb")
    assert paths.resolve(str(root), "") == os.path.realpath(root)


@pytest.mark.parametrize("bad", ["../outside", "sub/../../outside/x", "/etc/passwd", "\\etc", "a\0b"])
def test_escaping_or_absolute_paths_are_refused(root, bad):
    with pytest.raises(paths.PathError):
        paths.resolve(str(root), bad)


def test_symlink_out_of_root_is_refused(root):
    os.symlink(root.parent / "outside", root / "link")
    with pytest.raises(paths.PathError, match="outside the workspace"):
        paths.resolve(str(root), "link/x.ipynb")


def test_must_exist_names_the_path(root):
    with pytest.raises(paths.PathError, match="nope.ipynb"):
        paths.resolve(str(root), "nope.ipynb", must_exist=True)


def test_free_name_never_reuses_an_existing_file(root):
    (root / "a.ipynb").write_text("{}")
    (root / "a-2.ipynb").write_text("{}")
    assert paths.free_name(str(root / "a.ipynb")) == str(root / "a-3.ipynb")
    assert paths.free_name(str(root / "b.ipynb")) == str(root / "b.ipynb")


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "a\\b"])
def test_safe_segment_refuses_separators(bad):
    with pytest.raises(paths.PathError):
        paths.safe_segment(bad)
