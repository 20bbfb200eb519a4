from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from inrkit.errors import InputError
from inrkit.plugin import ExportRequest
from inrkit.plugins.image import export_png, image_metrics
from inrkit.plugins.image.io import load_image, to_pixels
from inrkit.plugins.image.quality import ssim

DATASETS = Path(__file__).resolve().parents[3] / "datasets"


def gradient(h=12, w=20):
    y, x = np.mgrid[0:h, 0:w]
    return ((x * 7 + y * 13) % 256).astype(np.uint8)


@pytest.mark.parametrize(
    "mode, channels, depth",
    [("L", 1, 8), ("RGB", 3, 8), ("RGBA", 4, 8), ("LA", 2, 8), ("P", 3, 8), ("1", 1, 8), ("I;16", 1, 16)],
)
def test_modes_load_with_values_in_range(tmp_path, mode, channels, depth):
    base = gradient()
    if mode == "I;16":
        image = Image.fromarray(base.astype(np.uint16) * 257)
    elif mode == "P":
        image = Image.fromarray(np.stack([base] * 3, -1)).convert("P")
    else:
        image = Image.fromarray(base).convert(mode)
    path = tmp_path / "x.png"
    image.save(path)
    signal = load_image(path)
    assert signal.channels == channels and signal.metadata["bit_depth"] == depth
    assert signal.grid_shape == (12, 20)
    assert signal.values.min() >= -1 and signal.values.max() <= 1
    if mode in ("L", "I;16"):
        expected = base.astype(np.float64) / 255 * 2 - 1
        assert np.allclose(signal.values[:, 0].numpy(), expected.reshape(-1), atol=1e-6)


def test_round_trip_through_to_pixels_is_exact(tmp_path):
    for image in [Image.fromarray(gradient()), Image.fromarray(gradient().astype(np.uint16) * 250)]:
        path = tmp_path / "a.png"
        image.save(path)
        signal = load_image(path)
        back = to_pixels(signal.values, signal.grid_shape, signal.metadata)
        assert np.array_equal(np.asarray(back), np.asarray(Image.open(path)))


def test_coordinates_keep_aspect_ratio():
    signal = load_image(DATASETS / "camera-128.png")
    coords = signal.coordinates()
    assert coords[:, 0].min() == -1 and coords[:, 0].max() == 1
    wide = torch.zeros(6 * 11, 1)
    from inrkit.plugin import Signal

    s = Signal.from_grid(wide, (6, 11), data_range=2.0)
    c = s.coordinates()
    assert float(c[:, 1].max()) == pytest.approx(1.0) and float(c[:, 0].max()) == pytest.approx(0.5)
    # equal spacing on both axes
    assert float(c[11, 0] - c[0, 0]) == pytest.approx(float(c[1, 1] - c[0, 1]))


def test_nyquist_of_a_grid():
    signal = load_image(DATASETS / "camera-128.png")
    # 128 samples over [-1, 1]: spacing 2/127, Nyquist 127/4 cycles per unit
    assert signal.nyquist == pytest.approx((127 / 4, 127 / 4))


@pytest.mark.parametrize(
    "content, message",
    [(None, "does not exist"), (b"", "empty"), (b"hello, not an image", "not an image"), ("truncate", "truncated")],
)
def test_bad_files(tmp_path, content, message):
    path = tmp_path / "bad.png"
    if content == "truncate":
        Image.fromarray(gradient(64, 64)).save(path)
        path.write_bytes(path.read_bytes()[:200])
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        load_image(path)


def test_one_pixel_wide_is_rejected(tmp_path):
    path = tmp_path / "line.png"
    Image.fromarray(np.zeros((1, 50), np.uint8)).save(path)
    with pytest.raises(InputError, match="at least 2x2"):
        load_image(path)


def test_ssim_matches_scikit_image():
    metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(0)
    target = np.asarray(Image.open(DATASETS / "astronaut-128.png"), dtype=np.float64) / 255
    noisy = (target + rng.normal(0, 0.05, target.shape)).clip(0, 1)
    expected = metrics.structural_similarity(
        target, noisy, data_range=1.0, channel_axis=-1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    ours = ssim(torch.from_numpy(noisy), torch.from_numpy(target), data_range=1.0)
    assert ours == pytest.approx(expected, abs=1e-9)
    assert ssim(torch.from_numpy(target), torch.from_numpy(target), 1.0) == pytest.approx(1.0)


def test_export_resamples_a_constant_function(tmp_path):
    geometry = {"grid_shape": [10, 20], "extent": [9 / 19, 1.0]}
    request = ExportRequest(
        evaluate=lambda coords: torch.full((coords.shape[0], 3), 0.0),
        geometry=geometry,
        metadata={"mode": "RGB", "bit_depth": 8},
        path=tmp_path / "out.png",
        options={"resolution": [40, 30]},
    )
    export_png(request)
    image = Image.open(tmp_path / "out.png")
    assert image.size == (40, 30) and image.mode == "RGB"
    assert np.all(np.asarray(image) == 128)


def test_metrics_include_holdout_and_ssim():
    from inrkit.runwriter import core_metrics

    signal = load_image(DATASETS / "camera-128.png")
    mask = torch.ones(signal.samples, dtype=torch.bool)
    mask[::10] = False
    noisy = signal.values + 0.02
    noisy[~mask] += 0.02  # held-out pixels twice as far off: 6 dB lower
    core = core_metrics(signal, noisy, mask)
    assert core["psnr"] == pytest.approx(20 * np.log10(2 / 0.02), abs=1e-3)
    assert core["test_psnr"] == pytest.approx(20 * np.log10(2 / 0.04), abs=1e-3)
    assert "test_psnr" not in core_metrics(signal, noisy, torch.ones(signal.samples, dtype=torch.bool))
    metrics = image_metrics(signal, noisy)
    assert 0.9 < metrics["ssim"] <= 1.0 and metrics["psnr_all"] < core["psnr"]
