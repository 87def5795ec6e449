"""``python -m embgeo``: the same as the ``embgeo`` command."""

import sys

from embgeo.cli import main

sys.exit(main())
