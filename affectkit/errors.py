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
    """A configuration failed validation; ``errors`` holds ``(path, reason)`` pairs.

    ``origins`` (parallel to ``errors``) names where each bad value came from - a config
    file, ``--set KEY=VALUE``, a command-line option - when the config was layered from
    several sources; ``None`` where that is unknown.
    """

    def __init__(
        self,
        errors: list[tuple[str, str]],
        source: str = "config",
        origins: list[str | None] | None = None,
    ) -> None:
        self.errors = errors
        self.source = source
        self.origins = list(origins) if origins is not None else [None] * len(errors)
        lines = "\n".join(
            f"  {origin + ': ' if origin else ''}{path}: {reason}"
            for (path, reason), origin in zip(errors, self.origins, strict=True)
        )
        super().__init__(f"{source} is invalid ({len(errors)} error(s)):\n{lines}")


class UnknownComponentError(UserError):
    """A registry lookup by a name that nobody registered."""


class PluginError(UserError):
    """A plugin failed to load or registered a conflicting name.

    A user error: the fix is in the installed plugins (uninstall, upgrade, or restrict
    them with ``AFFECTKIT_LOAD_PLUGINS``), so the CLI exits 2 with the message.
    """
