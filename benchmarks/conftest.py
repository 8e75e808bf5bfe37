import pytest

from figures import write_json


@pytest.fixture(scope="session", autouse=True)
def figures_as_json():
    """Every figure the run reported, as JSON where WEDMETRICS_BENCH_JSON says."""
    yield
    write_json()
