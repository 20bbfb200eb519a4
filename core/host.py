"""The plugin host: a pluggy manager plus the registry it fills.

Plugins come from two places, registered through the same hooks:

1. the built-ins listed in ``inrkit.plugins.BUILTIN_PLUGINS``;
2. entry points in the group ``inrkit`` of installed distributions.

Environment variables:

``INRKIT_DISABLE_PLUGIN_AUTOLOAD``
    Set to ``1`` to load no entry-point plugins (built-ins only).
``INRKIT_PLUGINS``
    Comma-separated entry-point names: load only these.
``INRKIT_DISABLE_PLUGINS``
    Comma-separated plugin names to skip, built-in or not (e.g. ``sdf``):
    their signals, exporters and commands are then absent.

A plugin that fails to import, or declares an incompatible
``INRKIT_HOOK_VERSION``, is skipped and reported in :attr:`Host.problems`.
Two plugins registering the same name is a :class:`PluginError` naming both.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pluggy

from inrkit import hookspecs
from inrkit.errors import ConfigError, PluginError
from inrkit.hookspecs import HOOK_VERSION
from inrkit.plugin_types import ExporterType, LossType, SamplerType, SignalType

ENTRY_POINT_GROUP = "inrkit"
#: Core modules that register the domain-agnostic samplers and losses.
CORE_PLUGINS = ("inrkit.sampling", "inrkit.losses")
_KINDS = {
    "signal": ("inrkit_register_signals", SignalType),
    "sampler": ("inrkit_register_samplers", SamplerType),
    "loss": ("inrkit_register_losses", LossType),
    "exporter": ("inrkit_register_exporters", ExporterType),
}


@dataclass
class PluginInfo:
    """One loaded plugin, as ``inrkit plugins`` lists it."""

    name: str
    distribution: str
    version: str
    provides: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "distribution": self.distribution, "version": self.version, "provides": self.provides}


class Host:
    """The loaded plugins and everything they registered."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("inrkit")
        self.pm.add_hookspecs(hookspecs)
        self.plugins: list[PluginInfo] = []
        self.problems: list[str] = []
        self.registry: dict[str, dict[str, Any]] = {kind: {} for kind in _KINDS}
        self._owner: dict[tuple[str, str], PluginInfo] = {}
        self._load_builtins()
        self._load_entry_points()
        self._collect()

    def _add(self, plugin: Any, name: str, distribution: str, version: str) -> None:
        if name in _disabled():
            return
        declared = getattr(plugin, "INRKIT_HOOK_VERSION", None)
        if declared is not None and str(declared).split(".")[0] != HOOK_VERSION.split(".")[0]:
            self.problems.append(
                f"plugin {name!r} ({distribution}) was written for hook version {declared}, "
                f"this inrkit provides {HOOK_VERSION}: skipped; upgrade the plugin"
            )
            return
        try:
            self.pm.register(plugin, name=name)
        except ValueError as error:
            self.problems.append(f"plugin {name!r} ({distribution}) could not be registered: {error}")
            return
        self.plugins.append(PluginInfo(name, distribution, version))

    def _load_builtins(self) -> None:
        from inrkit import __version__

        builtins = importlib.import_module("inrkit.plugins").BUILTIN_PLUGINS
        for module_name in (*CORE_PLUGINS, *builtins):
            module = importlib.import_module(module_name)
            self._add(module, module_name.rsplit(".", 1)[-1], "inrkit", __version__)

    def _load_entry_points(self) -> None:
        if os.environ.get("INRKIT_DISABLE_PLUGIN_AUTOLOAD", "").strip() not in ("", "0"):
            return
        only = {n.strip() for n in os.environ.get("INRKIT_PLUGINS", "").split(",") if n.strip()}
        for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
            if only and entry.name not in only:
                continue
            dist = entry.dist.name if entry.dist else "unknown distribution"
            version = entry.dist.version if entry.dist else "?"
            try:
                plugin = entry.load()
            except Exception as error:  # noqa: BLE001 - any import failure must skip, not crash
                self.problems.append(
                    f"plugin {entry.name!r} ({dist}) failed to load: {type(error).__name__}: {error}; skipped"
                )
                continue
            self._add(plugin, entry.name, dist, version)

    def _collect(self) -> None:
        by_name = {info.name: info for info in self.plugins}
        for kind, (hook_name, cls) in _KINDS.items():
            hook = getattr(self.pm.hook, hook_name)
            for impl in reversed(hook.get_hookimpls()):
                owner = by_name[impl.plugin_name]

                def register(item: Any, _owner: PluginInfo = owner, _kind: str = kind, _cls: type = cls) -> None:
                    self._register(_kind, _cls, item, _owner)

                try:
                    impl.function(register=register)
                except PluginError:
                    raise
                except Exception as error:  # noqa: BLE001 - a broken plugin is skipped
                    self.problems.append(
                        f"plugin {owner.name!r} ({owner.distribution}) failed in {hook_name}: "
                        f"{type(error).__name__}: {error}; skipped"
                    )

    def _register(self, kind: str, cls: type, item: Any, owner: PluginInfo) -> None:
        if not isinstance(item, cls):
            raise PluginError(
                f"plugin {owner.name!r} ({owner.distribution}) registered a {type(item).__name__} "
                f"as a {kind}; register a {cls.__name__}"
            )
        table = self.registry[kind]
        key = (item.signal, item.name) if kind == "exporter" else item.name
        if key in table:
            first = self._owner[(kind, str(key))]
            raise PluginError(
                f"{kind} {item.name!r} is registered by both {first.name!r} ({first.distribution}) and "
                f"{owner.name!r} ({owner.distribution}); uninstall one, or choose with INRKIT_PLUGINS"
            )
        table[key] = item
        self._owner[(kind, str(key))] = owner
        owner.provides.setdefault(kind, []).append(item.name)

    def _lookup(self, kind: str, name: str) -> Any:
        table = self.registry[kind]
        if name not in table:
            valid = ", ".join(sorted(table)) or "none installed"
            raise ConfigError(f"unknown {kind} {name!r}; valid: {valid}")
        return table[name]

    def signal(self, name: str) -> SignalType:
        """The signal type called ``name`` (ConfigError listing valid names otherwise)."""
        return self._lookup("signal", name)

    def sampler(self, name: str) -> SamplerType:
        """The sampler called ``name``."""
        return self._lookup("sampler", name)

    def loss(self, name: str) -> LossType:
        """The loss called ``name``."""
        return self._lookup("loss", name)

    def exporters_for(self, signal: str) -> list[ExporterType]:
        """Every exporter registered for a signal type."""
        return [e for (sig, _), e in self.registry["exporter"].items() if sig == signal]

    def exporter(self, signal: str, name: str | None = None, path: Path | None = None) -> ExporterType:
        """Pick an exporter of ``signal`` by name, else by the output path's extension."""
        candidates = self.exporters_for(signal)
        if not candidates:
            raise ConfigError(f"no exporter is installed for {signal!r} signals")
        if name is not None:
            for exporter in candidates:
                if exporter.name == name:
                    return exporter
            valid = ", ".join(sorted(e.name for e in candidates))
            raise ConfigError(f"unknown exporter {name!r} for {signal!r} signals; valid: {valid}")
        if path is not None:
            suffix = path.suffix.lower()
            for exporter in candidates:
                if suffix in exporter.extensions:
                    return exporter
            valid = ", ".join(sorted({ext for e in candidates for ext in e.extensions}))
            raise ConfigError(f"cannot write {path.name!r}: {signal} exports to {valid}; change the extension")
        return candidates[0]

    def signal_for_path(self, path: Path) -> SignalType:
        """Choose the signal type from a file extension (when ``--signal`` is omitted).

        When several signal types claim the extension, the highest
        ``extension_priority`` wins; a tie is ambiguous.
        """
        suffix = path.suffix.lower()
        matches = [s for s in self.registry["signal"].values() if suffix in s.extensions]
        if matches:
            best = max(s.extension_priority for s in matches)
            matches = [s for s in matches if s.extension_priority == best]
        if len(matches) == 1:
            return matches[0]
        names = ", ".join(sorted(self.registry["signal"]))
        if not matches:
            raise ConfigError(
                f"cannot tell the signal type of {path.name!r} from its extension; pass --signal ({names})"
            )
        both = ", ".join(sorted(s.name for s in matches))
        raise ConfigError(f"{path.name!r} could be any of {both}; pass --signal to choose")


    def extension_clashes(self) -> list[str]:
        """One line per extension that two or more signal types claim at the same priority."""
        claims: dict[str, list[SignalType]] = {}
        for signal_type in self.registry["signal"].values():
            for suffix in signal_type.extensions:
                claims.setdefault(suffix, []).append(signal_type)
        lines = []
        for suffix, claimants in sorted(claims.items()):
            best = max(s.extension_priority for s in claimants)
            tied = sorted(s.name for s in claimants if s.extension_priority == best)
            if len(tied) > 1:
                owners = ", ".join(f"{n} ({self._owner[('signal', n)].distribution})" for n in tied)
                lines.append(f"extension {suffix} is claimed by {owners} at priority {best}: "
                             "pass --signal for such files, or give one plugin a higher extension_priority")
        return lines


def _disabled() -> set[str]:
    return {n.strip() for n in os.environ.get("INRKIT_DISABLE_PLUGINS", "").split(",") if n.strip()}


_HOST: Host | None = None


def get_host(reload: bool = False) -> Host:
    """The process-wide host, loaded once (``reload=True`` loads again)."""
    global _HOST
    if _HOST is None or reload:
        _HOST = Host()
    return _HOST
