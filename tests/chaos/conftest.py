"""The chaos suite runs on the integration tests' stack (their ``stack`` fixture)."""

from tests.integration.conftest import stack  # noqa: F401 - the fixture
