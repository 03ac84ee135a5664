"""Errors a user causes and can fix (data files, option values, paths): ``python -m train`` prints
each as one line on stderr and exits with status 2, like argparse does for a bad option."""

EXIT_USAGE = 2


class UserInputError(Exception):
    """Something the user can fix; the message names it (and the file and line, where there is one)."""


class ImageReadError(UserInputError):
    """An image file that cannot be decoded."""


def one_line(error: BaseException) -> str:
    """The error's message on one line.

    A DataLoader worker re-raises its error in the training process with the worker's
    traceback folded into the message; the error's own line is the last one.
    """
    lines = str(error).strip().splitlines() or [type(error).__name__]
    last = lines[-1]
    name = type(error)
    return last.removeprefix(f"{name.__module__}.{name.__qualname__}: ")
