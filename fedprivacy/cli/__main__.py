"""``python -m fedprivacy.cli``."""

import sys

from . import main

sys.exit(main())
