import sys

from .worker import child_main

sys.exit(child_main())
