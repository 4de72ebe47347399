"""Train a network: ``python training/train.py --config CONFIG [section.key=value]``.

The command is ``bisestdc_core.cli.train``; it needs the package
installed (``make venv``, colcon) or on PYTHONPATH.
"""

import sys

from bisestdc_core.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
