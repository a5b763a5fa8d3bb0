"""`python -m gateway`: serve the app, or run a command (see gateway.cli)."""

import sys

from gateway.cli import main

sys.exit(main())
