"""Test helpers shared by every package's tests: a database per run, migrations, app clients.

Registered as a pytest plugin (``-p shared.testing.plugin``); nothing here is mocked.
"""

from shared.testing.apps import app_client
from shared.testing.migrations import assert_models_match_migrations, migrate

__all__ = ["app_client", "assert_models_match_migrations", "migrate"]
