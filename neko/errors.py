"""The one exception type users see.

Anything a user can get wrong (a file, a field, a config key, a task name) raises `NekoError` with a
single line that names the place and what was expected. The CLI prints that line and exits with
status 2 instead of showing a traceback.
"""


class NekoError(Exception):
    """A user-facing error whose message is one self-explanatory line."""


def first_line(error: BaseException) -> str:
    """The first line of a library's error message (its type name when empty), for a `NekoError`."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
