"""``python -m bisestdc_ros.bag_eval``: the same as the ``bisestdc-bag-eval`` command.

Runs :func:`bisestdc_ros.bag_eval.cli.main` with the process arguments and exits with its code.
"""

import sys

from bisestdc_ros.bag_eval.cli import main

sys.exit(main())
