"""Train a network: ``python training/train.py --config CONFIG [section.key=value]``.

The command is ``bisestdc_core.training.cli``; this script runs it from a
checkout, installed or not.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's packages first
from bisestdc_core.training.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
