"""The one exception type users see.

Anything a user can get wrong (a file, a field, a config key, a task name) raises `NekoError` with a
single line that names the place and what was expected. The CLI prints that line and exits with
status 2 instead of showing a traceback.
"""


class NekoError(Exception):
    """A user-facing error whose message is one self-explanatory line."""
