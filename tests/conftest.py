"""Fixtures shared by every test folder. Folder-specific ones live in that folder's conftest.py."""

import os

import pytest

from tests.prereqs import REPO, require, require_root


@pytest.fixture(scope="session")
def repo_root():
    return REPO


@pytest.fixture(scope="session")
def personal_hub():
    """One hub in personal mode (under an ordinary OS account) for tests/hub and tests/security."""
    from tests.hub.hubprocess import personal_hub_process

    require_root()  # to make the ordinary account the hub runs under
    require(os.path.exists(os.path.join(REPO, "node_modules/.bin/configurable-http-proxy")),
            "needs node_modules/.bin/configurable-http-proxy (npm install)")
    with personal_hub_process() as hub:
        yield hub
