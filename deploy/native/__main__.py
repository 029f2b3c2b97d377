"""``python -m deploy.native``: the command line of ``scripts/stack`` (see :mod:`deploy.native.cli`)."""

import sys

from deploy.native.cli import main

sys.exit(main())
