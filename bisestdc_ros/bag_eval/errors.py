"""The error the evaluator raises when a run cannot start or finish.

Bag problems are :class:`bisestdc_ros.bags.reader.BagError`; everything else that stops an
evaluation (bad arguments, a node that does not start, outputs that never arrive, a report
that cannot be written) is an :class:`EvalError`. The CLI prints both as one ``error:`` line
and exits with code 2 (``run_command``).
"""


class EvalError(RuntimeError):
    """The evaluation cannot run or finish (node did not start, no output arrived, ...)."""
