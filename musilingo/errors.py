"""The one exception type for user mistakes.

Anything a user can fix (a bad path, a malformed annotation row, a cache made with another
encoder) raises `UserError` with a one-line message that names the file, row or field and says
what to do. The CLI turns it into `error: <message>` and exit status 2; everything else is a bug
and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input or environment, explained in one line."""
