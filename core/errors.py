"""Exceptions raised by inrkit.

Every error a user can cause derives from :class:`InrkitError`. Its message is
one line that says what was wrong, what is valid and what to do; the CLI prints
it and exits with status 2. Library code never prints or exits.
"""


class InrkitError(Exception):
    """Base class of every error inrkit raises on purpose."""


class InputError(InrkitError):
    """An input file is missing, unreadable, truncated or holds invalid data."""


class ConfigError(InrkitError):
    """An option or configuration value is outside its valid range."""


class TooManyTerms(ConfigError):
    """The predicted spectrum needs more terms than allowed (raise the tolerance or lower the order)."""


class RunDirError(InrkitError):
    """A run directory is missing, incomplete or not an inrkit run directory."""


class PluginError(InrkitError):
    """A plugin is broken, incompatible, or two plugins claim the same name."""


class InrkitWarning(UserWarning):
    """Something worked but deserves the user's attention (e.g. a mesh with holes).

    Plugins raise it with :func:`warnings.warn`; the CLI prints it as one
    ``warning:`` line.
    """
