"""Run-directory pictures: chart ranges, chart text, labelled comparison pictures."""

import numpy as np
import pytest

from inrkit.plots import WORD_GAP, axis_range, layout_text, line_chart
from inrkit.runwriter import prune_path_figure


def _pixels_of(image, colour) -> int:
    pixels = np.asarray(image)[..., :3]
    return int(np.all(pixels == np.asarray(colour, dtype=np.uint8), axis=-1).sum())


@pytest.mark.parametrize("values", [[3.0], [30.0, 30.0, 30.0], [0.0], [1000.0, 1000.0]])
def test_degenerate_data_gets_a_sensible_axis_range(values):
    low, high = axis_range(np.array(values))
    assert low < values[0] < high
    assert high - low >= 0.5 and high - low <= max(1.0, 0.2 * abs(values[0]))


def test_axis_range_of_ordinary_data_is_its_extent():
    assert axis_range(np.array([2.0, 5.0, 3.0])) == (2.0, 5.0)


def test_prune_path_of_one_phase_shows_its_point():
    figure = np.asarray(prune_path_figure([{"phase": 0, "psnr": 31.2, "parameters": 4000}]))
    plot = figure[:, 60:540]  # left of the legends, right of the y axis
    assert _pixels_of(plot, (200, 60, 40)) > 20  # the PSNR dot, not one pixel on the axis
    assert _pixels_of(plot, (40, 90, 200)) > 20  # the size dot


def test_a_constant_series_is_drawn_inside_the_axes():
    colour = (10, 200, 10)
    chart = line_chart([(np.arange(5.0), np.full(5, 7.0), colour, "flat")], "flat", "x", log_y=False)
    rows = np.nonzero(np.all(np.asarray(chart) == colour, axis=-1).any(axis=1))[0]
    plot_rows = [r for r in rows if r > 60]  # below the legend
    assert plot_rows and 100 < np.median(plot_rows) < 200  # mid-height, not on the border


def test_chart_text_keeps_its_spaces():
    title = "PSNR after each phase (ticks: rejected prunes)"
    measure = lambda word: 6.0 * len(word)  # noqa: E731
    (line,) = layout_text(title, measure=measure)
    assert " ".join(word for _, word in line) == title
    for (x, word), (next_x, _) in zip(line, line[1:]):
        assert next_x - (x + measure(word)) >= WORD_GAP  # every space is a visible gap
    wrapped = layout_text(title, max_width=100, measure=measure)
    assert len(wrapped) > 1 and all(x + measure(w) <= 100 for line in wrapped for x, w in line if x > 0)
    assert " ".join(word for line in wrapped for _, word in line) == title


def test_default_font_gap_between_words_is_wide_enough():
    (line,) = layout_text("input surface")
    (x0, first), (x1, _) = line
    from inrkit.plots import _text_width

    assert x1 - (x0 + _text_width(first)) >= WORD_GAP


def test_image_comparison_is_labelled_and_has_a_colour_bar():
    from inrkit.plugins.image.quality import comparison_picture

    rng = np.random.default_rng(0)
    target = rng.uniform(size=(32, 40, 3))
    picture = np.asarray(comparison_picture(target, target + rng.normal(scale=0.05, size=target.shape),
                                            min_height=64))
    height, width = 64, 80  # enlarged twice
    header = picture.shape[0] - height
    assert header >= 12  # a label row above the panels
    for panel in range(3):  # each panel has dark label text above it
        left = panel * (width + 4)
        assert (picture[:header, left : left + width] < 100).any()
    assert picture.shape[1] > 3 * width + 8 + 10  # a colour bar beside the error map
    bar = picture[header + 2 : -2, 3 * width + 8 + 4 + 7].astype(float).mean(axis=1)
    assert bar[0] > 240 and bar[-1] < 15 and np.all(np.diff(bar) <= 1)  # white at the top to black at the bottom


def test_audio_waveform_shows_target_reconstruction_and_error():
    from inrkit.plugins.audio.quality import (
        ERROR_COLOUR,
        RECONSTRUCTION_COLOUR,
        TARGET_COLOUR,
        _waveform_image,
    )

    t = np.linspace(0, 1, 8000)
    target = 0.8 * np.sin(2 * np.pi * 5 * t) * np.sin(2 * np.pi * 220 * t)
    recon = 0.6 * target
    picture = _waveform_image(target, recon, (400, 200))
    lane = np.asarray(picture)[16:116]  # the first lane, below its title
    assert _pixels_of(lane, TARGET_COLOUR) > 400  # the target's outline is not hidden
    assert _pixels_of(lane, RECONSTRUCTION_COLOUR) > 400
    assert _pixels_of(picture, ERROR_COLOUR) > 400


def test_a_window_cuts_each_curve_at_its_edges_by_linear_interpolation():
    from inrkit.plots import _clip

    x, y = np.array([0.1, 0.5, 1.0, 2.0]), np.array([20.0, 28.0, 31.0, 35.0])
    cut_x, cut_y = _clip(x, y, 0.3, 1.5)
    assert cut_x.tolist() == [0.3, 0.5, 1.0, 1.5]
    assert cut_y[0] == pytest.approx(20.0 + 8.0 * (0.3 - 0.1) / 0.4)  # on the segment 0.1-0.5
    assert cut_y[-1] == pytest.approx(33.0)  # half-way from 31 to 35
    assert _clip(x, y, 3.0, 4.0)[0].size == 0  # wholly outside: nothing drawn


def test_rate_distortion_chart_zooms_to_inrkits_rates():
    from inrkit.ratedistortion import chart, chart_window, curves

    def row(method, rate, value):
        return {"method": method, "rate": rate, "rate_unit": "bits per pixel", "metrics": {"psnr": value}}

    rows = [row("inrkit", 0.3, 28.0), row("inrkit", 0.5, 30.0)]
    rows += [row("JPEG", r, 20 + 5 * r) for r in (0.1, 0.2, 0.4, 0.8, 1.6, 3.2)]
    assert chart_window(curves(rows)) == (0.15, 1.0)
    assert chart_window(curves(rows[2:])) is None  # no inrkit point: every rate
    red = (200, 30, 30)  # the first method's colour
    image = np.asarray(chart(rows, "t"))
    columns = np.nonzero(np.all(image == red, axis=-1).any(axis=0))[0]
    columns = columns[columns < 500]  # left of the legend
    # 0.3 and 0.5 bpp in a window of 0.15-1.0 fill the middle of the plot, not its left edge
    assert columns.min() > 150 and columns.max() - columns.min() > 100


@pytest.mark.parametrize("scattered", [(), (0,)])
def test_a_scattered_series_has_no_line_between_its_points(scattered):
    colour = (10, 200, 10)
    chart = np.asarray(line_chart([(np.array([0.0, 10.0]), np.array([0.0, 10.0]), colour, "two")], "t", "x",
                                  log_y=False, scattered=scattered))
    drawn = np.all(chart == colour, axis=-1)
    # the points sit at the plot's lower-left and upper-right corners (x 56 and 748 of 760); the legend is right
    # of x 548: a line crosses the columns between, two dots leave them empty
    assert drawn[:, 150:500].any() == (not scattered)
    assert drawn[:, :70].any() and drawn[:, 700:].any()  # both ways, both ends were drawn
