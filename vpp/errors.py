"""Errors shared by the command line and the service."""


class UserError(Exception):
    """A problem the user can fix (bad file, bad argument); printed without a traceback."""
