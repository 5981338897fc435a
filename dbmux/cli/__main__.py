"""``python -m dbmux.cli``: the same as the ``dbmux`` command."""

import sys

from dbmux.cli.main import main

sys.exit(main())
