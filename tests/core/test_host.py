import pytest

from inrkit.errors import ConfigError, PluginError
from inrkit.host import Host, get_host
from inrkit.testing import fake_distribution


SIGNAL_PLUGIN = """
from inrkit.plugin import SignalType, hookimpl

def load(path):
    raise NotImplementedError

@hookimpl
def inrkit_register_signals(register):
    register(SignalType(name="{name}", load=load, extensions=(".xyz",)))
"""


def test_builtins_are_registered():
    host = get_host()
    assert {"image"} <= set(host.registry["signal"])
    assert {"full", "uniform", "stratified"} <= set(host.registry["sampler"])
    assert "mse" in host.registry["loss"]
    assert {p.name for p in host.plugins} >= {"sampling", "losses", "image"}
    assert all(p.distribution == "inrkit" for p in host.plugins if p.name in {"sampling", "losses", "image"})


def test_entry_point_plugin_is_discovered(tmp_path, monkeypatch):
    fake_distribution(tmp_path, "inrkit-xyz", {"xyz": "xyzplugin"}, {"xyzplugin": SIGNAL_PLUGIN.format(name="xyz")})
    monkeypatch.syspath_prepend(str(tmp_path))
    host = Host()
    assert host.signal("xyz").extensions == (".xyz",)
    assert host.signal_for_path(tmp_path / "a.XYZ").name == "xyz"
    info = next(p for p in host.plugins if p.name == "xyz")
    assert info.distribution == "inrkit-xyz" and info.provides == {"signal": ["xyz"]}
    monkeypatch.setenv("INRKIT_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert "xyz" not in Host().registry["signal"]
    monkeypatch.delenv("INRKIT_DISABLE_PLUGIN_AUTOLOAD")
    monkeypatch.setenv("INRKIT_PLUGINS", "something-else")
    assert "xyz" not in Host().registry["signal"]


def test_name_clash_names_both_distributions(tmp_path, monkeypatch):
    fake_distribution(tmp_path, "inrkit-imposter", {"imposter": "imposter"}, {"imposter": SIGNAL_PLUGIN.format(name="image")})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match="signal 'image' is registered by both") as caught:
        Host()
    assert "'image' (inrkit)" in str(caught.value) and "'imposter' (inrkit-imposter)" in str(caught.value)


def test_broken_and_incompatible_plugins_are_skipped(tmp_path, monkeypatch):
    fake_distribution(
        tmp_path,
        "inrkit-broken",
        {"broken": "brokenplugin", "old": "oldplugin"},
        {"brokenplugin": "raise ImportError('missing dependency foo')\n",
         "oldplugin": "INRKIT_HOOK_VERSION = '0.3'\n" + SIGNAL_PLUGIN.format(name="old")},
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    host = Host()
    assert "image" in host.registry["signal"] and "old" not in host.registry["signal"]
    text = "\n".join(host.problems)
    assert "'broken' (inrkit-broken) failed to load: ImportError: missing dependency foo" in text
    assert "hook version 0.3" in text


def test_unknown_names_list_valid_ones():
    host = get_host()
    with pytest.raises(ConfigError, match="unknown signal 'nope'; valid: .*image"):
        host.signal("nope")
    with pytest.raises(ConfigError, match="pass --signal"):
        host.signal_for_path(__import__("pathlib").Path("file.unknownext"))
    with pytest.raises(ConfigError, match="exports to .png"):
        host.exporter("image", path=__import__("pathlib").Path("x.jpg"))
