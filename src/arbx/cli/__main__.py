"""``python -m arbx.cli``."""

import sys

from arbx.cli import main

sys.exit(main())
