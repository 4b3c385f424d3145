"""Fixtures shared by every test folder. Folder-specific ones live in that folder's conftest.py."""

import pytest

from tests.prereqs import REPO


@pytest.fixture(scope="session")
def repo_root():
    return REPO
