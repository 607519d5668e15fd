"""Shared test settings: one thread per process (oversubscription on small machines is ruinous)."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("GENAUG_HOME", os.path.join(os.path.dirname(__file__), ".genaug-home-unused"))

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Each test sees an empty $GENAUG_HOME and no $GENAUG_DATA, so nothing leaks from the user's cache."""
    monkeypatch.setenv("GENAUG_HOME", str(tmp_path_factory.mktemp("genaug-home")))
    monkeypatch.delenv("GENAUG_DATA", raising=False)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def test_method():
    """The test-only method and presets of tests/editors.py, registered only while the using module's tests
    run (other modules' registry listings never see them). Use with
    ``pytestmark = pytest.mark.usefixtures("test_method")``."""
    from genaug.testing import editors

    editors.register()
    yield editors
    editors.unregister()
