"""``python -m policies.cli``: the ``autopilot`` command without its entry-point script."""

import sys

from policies.cli import main

sys.exit(main())
