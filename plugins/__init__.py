"""Built-in signal plugins.

They are registered through the same hooks as third-party plugins and import
only the public API (:mod:`inrkit.plugin`, :mod:`inrkit.errors`), which makes
them the proof that the public API is sufficient.
"""

#: Modules the plugin host registers before any entry-point plugin.
BUILTIN_PLUGINS = (
    "inrkit.plugins.image",
    "inrkit.plugins.audio",
    "inrkit.plugins.sdf",
)
