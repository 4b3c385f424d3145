"""Fixtures of the science tests: one converted MobileNetV2 for the whole session."""

import pytest

try:  # before TensorFlow: TF bundles an SQLite without FTS5, which the catalog's index needs
    import deepvre.market.catalog  # noqa: F401
except ImportError:
    pass

from tests.prereqs import require


@pytest.fixture(scope="session")
def mobilenet_dir(tmp_path_factory):
    from deepvre.science import mobilenet

    try:
        mobilenet.weights_path()
    except FileNotFoundError as err:
        require(False, str(err))
    return mobilenet.convert(str(tmp_path_factory.mktemp("mobilenet") / "model"))


@pytest.fixture(scope="session")
def mobilenet_model(mobilenet_dir):
    from deepvre.science import mobilenet

    return mobilenet.load(mobilenet_dir)
