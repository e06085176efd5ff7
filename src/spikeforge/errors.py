"""Exceptions for user errors.

Every problem a user can fix (a missing file, an unknown parameter, a value out of
range, an array of the wrong shape) raises a :class:`SpikeforgeError` whose message
names the offending value and what was expected.  The command line prints that
message on one line and exits with status 2; anything else is a bug and keeps its
traceback.
"""


class SpikeforgeError(Exception):
    """Base class of every error caused by the user's input."""


class ParameterError(SpikeforgeError):
    """A parameter is unknown, has the wrong type, or an impossible value."""


class DataFileError(SpikeforgeError):
    """A file or data directory is missing, unreadable, corrupt, or has the wrong content."""


class SpikeforgeWarning(UserWarning):
    """Something the user should know about their input or run, which does not stop it (a
    silent network, P entries clipped to the int16 range).  The command line prints it as one
    line ``warning: ...``."""
