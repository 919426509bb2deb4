"""Error types. ``UserError`` is bad input: the CLI prints its message and exits 2."""

from __future__ import annotations


class AffectkitError(Exception):
    """Base class of affectkit's own errors."""


class UserError(AffectkitError):
    """Bad input from the user (files, configs, names, shapes, NaN).

    The message is one paragraph that names the thing and the fix; the CLI prints it
    without a traceback and exits with code 2.
    """


class ConfigError(UserError):
    """A configuration failed validation; ``errors`` holds ``(path, reason)`` pairs."""

    def __init__(self, errors: list[tuple[str, str]], source: str = "config") -> None:
        self.errors = errors
        self.source = source
        lines = "\n".join(f"  {path}: {reason}" for path, reason in errors)
        super().__init__(f"{source} is invalid ({len(errors)} error(s)):\n{lines}")


class UnknownComponentError(UserError):
    """A registry lookup by a name that nobody registered."""


class PluginError(AffectkitError):
    """A plugin failed to load or registered a conflicting name."""
