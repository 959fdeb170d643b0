"""``python -m kloudless.cli``."""

import sys

from . import main

sys.exit(main())
