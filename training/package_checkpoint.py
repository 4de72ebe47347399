"""Make a deployable checkpoint: ``python training/package_checkpoint.py SRC DST``.

The command is ``bisestdc_core.training.package_checkpoint``; this script runs it from a
checkout, installed or not.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's packages first
from bisestdc_core.training.package_checkpoint import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
