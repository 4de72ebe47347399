"""The one error that stops the node from starting (the command line exits 2 with its message)."""


class StartupError(RuntimeError):
    """The node cannot start with its parameters (bad value, missing model file, ...)."""
