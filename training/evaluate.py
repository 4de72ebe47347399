"""Evaluate a network: ``python training/evaluate.py --weights CKPT --root DATA --out DIR``.

The command is ``bisestdc_core.cli.evaluate``; it needs the package
installed (``make venv``, colcon) or on PYTHONPATH.
"""

import sys

from bisestdc_core.cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
