"""Entry point of the frozen bundle: the same CLI as the ``ember`` command."""

import multiprocessing
import sys

from app.cli.main import main

if __name__ == "__main__":
    multiprocessing.freeze_support()
    sys.exit(main())
