"""Make a deployable checkpoint: ``python training/package_checkpoint.py SRC DST``.

The command is ``bisestdc_core.training.package_checkpoint``; it needs the package
installed (``make venv``, colcon) or on PYTHONPATH.
"""

import sys

from bisestdc_core.cli.package_checkpoint import main

if __name__ == "__main__":
    sys.exit(main())
