"""The base of every error a user can trigger with bad input."""


class InputError(ValueError):
    """Bad input from a user (a file, a number, a name). The message names what is wrong
    and how to fix it; the CLI prints it on one line and exits with code 2."""
