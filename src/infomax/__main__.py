"""``python -m infomax`` is the ``infomax`` command (``torchrun -m infomax train ...``)."""

import sys

from infomax.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
