"""``python -m resultkit``: the ``resultkit`` command."""

import sys

from .cli import main

sys.exit(main())
