""".npy volumes whose header claims more than the file holds or memory can take: one clear error, no allocation."""

import struct

import numpy as np
import pytest
from typer.testing import CliRunner

from inrkit.cli.main import app
from inrkit.errors import InputError
from inrkit.plugins.sdf import io

runner = CliRunner()


def forged(path, shape, version=(1, 0), dtype="<f4", data=b"\0" * 64):
    """A .npy file whose header claims ``shape`` but which holds only ``data``."""
    header = {"descr": dtype, "fortran_order": False, "shape": shape}
    with open(path, "wb") as handle:
        if version == (1, 0):
            np.lib.format.write_array_header_1_0(handle, header)
        else:
            np.lib.format.write_array_header_2_0(handle, header)
        handle.write(data)
    return path


def version_3(path, shape):
    """A hand-made format 3.0 header (numpy writes 3.0 only for Unicode field names)."""
    text = repr({"descr": "<f4", "fortran_order": False, "shape": shape}).encode()
    text += b" " * (-(len(text) + 13) % 64) + b"\n"
    path.write_bytes(b"\x93NUMPY\x03\x00" + struct.pack("<I", len(text)) + text + b"\0" * 64)
    return path


def sphere(n=10):
    axis = np.linspace(-1, 1, n)
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    return (np.sqrt(x * x + y * y + z * z) - 0.5).astype(np.float32)


@pytest.mark.parametrize("version", [(1, 0), (2, 0)])
def test_a_header_claiming_petabytes_is_one_error(tmp_path, version):
    path = forged(tmp_path / "huge.npy", (100_000, 100_000, 100_000), version)
    with pytest.raises(InputError) as caught:
        io.load_sdf(path)
    message = str(caught.value)
    assert "truncated or forged" in message and "4,000,000,000,000,000 bytes" in message
    assert str(path) in message and "\n" not in message


def test_a_version_3_header_is_refused_before_numpy_allocates(tmp_path):
    path = version_3(tmp_path / "v3.npy", (100_000, 100_000, 100_000))
    with pytest.raises(InputError, match="format version 3.0"):
        io.load_sdf(path)


def test_a_short_file_is_one_error(tmp_path):
    path = forged(tmp_path / "short.npy", (10, 10, 10), data=sphere(10).tobytes()[:-4])
    with pytest.raises(InputError, match="4,000 bytes"):
        io.load_sdf(path)


def test_a_grid_larger_than_free_memory_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "grid.npy"
    np.save(path, sphere(10))
    monkeypatch.setattr(io, "_available_memory", lambda: 1000)
    with pytest.raises(InputError, match="more than the .* of memory free") as caught:
        io.load_sdf(path)
    assert "downsample" in str(caught.value)


def test_running_out_of_memory_while_loading_is_one_error(tmp_path, monkeypatch):
    path = tmp_path / "grid.npy"
    np.save(path, sphere(10))

    def out_of_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(io.np, "load", out_of_memory)
    with pytest.raises(InputError, match="too large"):
        io.load_sdf(path)


def test_a_valid_grid_still_loads(tmp_path):
    path = tmp_path / "grid.npy"
    volume = sphere(10)
    np.save(path, volume)
    signal = io.load_sdf(path)
    assert signal.grid_shape == (10, 10, 10)
    assert np.array_equal(signal.values[:, 0].numpy(), volume.reshape(-1))


def test_a_forged_header_exits_2_from_the_cli(tmp_path):
    path = forged(tmp_path / "huge.npy", (100_000, 100_000, 100_000))
    run = tmp_path / "run"
    result = runner.invoke(app, ["fit", "--signal", "sdf", str(path), "-o", str(run), "--steps", "5"])
    assert result.exit_code == 2, (result.output, result.exception)
    lines = [line for line in result.output.splitlines() if line.strip() and not line.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "truncated or forged" in lines[0], result.output
    assert "Traceback" not in result.output and not run.exists()
