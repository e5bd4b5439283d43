"""``python -m gseq``: the ``gseq`` command."""

import sys

from .cli import main

sys.exit(main())
