"""``python -m libertem.web``: the same as ``libertem-server``."""

import sys

from libertem.web.cli import main

if __name__ == "__main__":
    sys.exit(main())
