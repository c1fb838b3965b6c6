"""``python -m app``: the same as the ``ember`` command."""

import sys

from app.cli.main import main

sys.exit(main())
