"""Options plugins declare for their loaders and exporters (``--option NAME=VALUE``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from inrkit.errors import ConfigError


@dataclass(frozen=True)
class Option:
    """An option a plugin declares for its loader or an exporter.

    Users set it with ``--option NAME=VALUE`` (``inrkit fit`` for loaders,
    ``inrkit export`` for exporters); it is listed in ``--help`` and
    ``inrkit plugins``, and a bad value gets the same one-line error as a
    built-in option. The loader receives the parsed values as keyword
    arguments, an exporter in :attr:`ExportRequest.options`.

    Attributes
    ----------
    name:
        Lower-case name (letters, digits, ``_``).
    type:
        ``int``, ``float``, ``str`` or ``bool``.
    default:
        Value when the user gives none (None: not passed on).
    help:
        One line for ``--help``.
    choices:
        The allowed values, if only some are.
    minimum, maximum:
        Bounds of a number (inclusive).

    Example::

        Option("channel", int, default=0, help="column to fit", minimum=0)
    """

    name: str
    type: type = str
    default: Any = None
    help: str = ""
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not re.match(r"^[a-z][a-z0-9_]*$", self.name):
            raise ConfigError(f"option name {self.name!r} is invalid: use lower-case letters, digits and '_'")
        if self.type not in (int, float, str, bool):
            raise ConfigError(f"option {self.name!r} has type {self.type!r}; use int, float, str or bool")

    def parse(self, text: Any, owner: str) -> Any:
        """The value of ``text`` (a command-line string, or already a value); ConfigError with one line if invalid."""
        where = f"--option {self.name} of {owner}"
        value: Any = text
        if isinstance(text, str) and self.type is not str:
            if self.type is bool:
                lowered = text.strip().lower()
                if lowered not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ConfigError(f"{where} must be true or false, got {text!r}")
                value = lowered in ("1", "true", "yes", "on")
            else:
                try:
                    value = self.type(text)
                except ValueError:
                    raise ConfigError(f"{where} must be {'a whole number' if self.type is int else 'a number'}, got {text!r}") from None
        if self.type is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = float(value)
            if value != value or abs(value) == float("inf"):
                raise ConfigError(f"{where} must be a finite number, got {text!r}")
        if not isinstance(value, self.type) or (self.type is int and isinstance(value, bool)):
            raise ConfigError(f"{where} must be of type {self.type.__name__}, got {text!r}")
        if self.choices and value not in self.choices:
            raise ConfigError(f"{where} must be one of {', '.join(map(str, self.choices))}, got {text!r}")
        if self.minimum is not None and value < self.minimum:
            raise ConfigError(f"{where} must be at least {self.minimum:g}, got {text!r}")
        if self.maximum is not None and value > self.maximum:
            raise ConfigError(f"{where} must be at most {self.maximum:g}, got {text!r}")
        return value

    def describe(self) -> str:
        """One line for help texts: ``name (int, 0 to 8, default 2): help``."""
        def shown(value: Any) -> str:
            if isinstance(value, str):
                return repr(value)
            return str(int(value)) if self.type is int else f"{value:g}"

        facts = [self.type.__name__]
        if self.choices:
            facts.append("|".join(shown(c) for c in self.choices))
        if self.minimum is not None or self.maximum is not None:
            low = "" if self.minimum is None else shown(self.minimum)
            high = "" if self.maximum is None else shown(self.maximum)
            facts.append(f"{low}..{high}")
        if self.default is not None:
            facts.append(f"default {shown(self.default) if isinstance(self.default, str) else self.default}")
        return f"{self.name} ({', '.join(facts)}): {self.help}"


def parse_options(declared: tuple[Option, ...], given: Mapping[str, Any], owner: str,
                  with_defaults: bool = True) -> dict[str, Any]:
    """Check ``given`` (name -> text or value) against ``declared``; returns parsed values (plus defaults)."""
    known = {option.name: option for option in declared}
    unknown = sorted(set(given) - set(known))
    if unknown:
        valid = ", ".join(sorted(known)) or "none"
        raise ConfigError(f"{owner} has no option {unknown[0]!r}; its options: {valid}")
    values = {name: known[name].parse(text, owner) for name, text in given.items()}
    if with_defaults:
        for option in declared:
            if option.name not in values and option.default is not None:
                values[option.name] = option.default
    return values
