"""``python -m bisestdc_ros.bag_eval``: the same as the ``bisestdc-bag-eval`` command.

Runs the command line, `bisestdc_ros.cli.bag_eval`, as ``__main__`` with the process arguments
(it exits with its code). Run by name: the command line imports this package, so importing it
back from here would tie the two into a cycle (see the core-acyclic contract in .importlinter).
"""

import runpy

runpy.run_module("bisestdc_ros.cli.bag_eval", run_name="__main__", alter_sys=True)
