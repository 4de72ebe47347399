"""Evaluate a network: ``python training/evaluate.py --weights CKPT --root DATA --out DIR``.

The command is ``bisestdc_core.evaluation.cli``; it needs the package
installed (``make venv``, colcon) or on PYTHONPATH.
"""

import sys

from bisestdc_core.evaluation.cli import main

if __name__ == "__main__":
    sys.exit(main())
