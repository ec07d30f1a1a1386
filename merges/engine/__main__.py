"""``python -m merges.engine``: see ``merges.engine.cli``."""

import sys

from .cli import main

sys.exit(main())
