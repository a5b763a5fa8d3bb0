"""Loaded by pytest (entry point ``pytest11``) only so that ``gateway`` is imported first.

The tests run in pytest's importlib mode, which names ``gateway/tests/conftest.py``
``gateway.tests.conftest``; if the installed ``gateway`` package is not imported by then,
pytest makes the ``gateway/`` folder a namespace package of that name and the real
package can no longer be imported. Importing it here, before collection, prevents that.
"""

import gateway  # noqa: F401
