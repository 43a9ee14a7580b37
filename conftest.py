"""Root conftest: puts the repository on sys.path and loads the test services."""

pytest_plugins = ["tests.services"]
