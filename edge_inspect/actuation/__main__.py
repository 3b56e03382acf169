"""``python -m edge_inspect.actuation``: the reject scheduler process (started by the Inspector)."""

import sys

from .process import child_main

sys.exit(child_main())
