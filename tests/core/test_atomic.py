import pytest

from inrkit.errors import ConfigError
from inrkit.plugin import atomic_directory


def test_a_folder_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "frames"
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as folder:
            (folder / "0001.png").write_bytes(b"x")
            raise RuntimeError("killed half way")
    assert list(tmp_path.iterdir()) == []
    with atomic_directory(target) as folder:
        for index in range(3):
            (folder / f"{index:04d}.png").write_bytes(b"frame")
    assert sorted(p.name for p in target.iterdir()) == ["0000.png", "0001.png", "0002.png"]
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as folder:
            (folder / "new.png").write_bytes(b"x")
            raise RuntimeError("fails")
    assert sorted(p.name for p in target.iterdir()) == ["0000.png", "0001.png", "0002.png"], "old folder kept"
    with atomic_directory(target) as folder:
        (folder / "only.png").write_bytes(b"y")
    assert [p.name for p in target.iterdir()] == ["only.png"]
    assert [p.name for p in tmp_path.iterdir()] == ["frames"]


def test_a_file_is_never_replaced_by_a_folder(tmp_path):
    (tmp_path / "out").write_text("keep")
    with pytest.raises(ConfigError, match="not a folder"):
        with atomic_directory(tmp_path / "out"):
            pass
    assert (tmp_path / "out").read_text() == "keep"
