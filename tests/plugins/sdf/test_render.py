"""The software renderer behind ``views.png``: coverage, depth order, shading (checked against closed forms)."""

import numpy as np
import trimesh

from inrkit.plugins.sdf.render import BASE_COLOUR, _rasterise, render_view


def test_triangle_coverage_matches_its_area():
    side = 200
    pixels = np.array([[[20.0, 30.0], [170.0, 40.0], [60.0, 180.0]]])
    image = _rasterise(pixels, np.zeros((1, 3)), np.array([[10, 20, 30]], dtype=np.uint8), side)
    covered = (image != 255).any(axis=2).sum()
    a, b, c = pixels[0]
    area = abs((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])) / 2
    perimeter = sum(np.linalg.norm(p - q) for p, q in ((a, b), (b, c), (c, a)))
    assert abs(covered - area) < perimeter / 2  # only pixels the edges cut can go either way
    assert (image[100, 80] == [10, 20, 30]).all()  # an inside pixel takes the triangle's colour


def test_nearest_triangle_wins_whatever_the_order():
    side = 64
    square = [[4.0, 4.0], [60.0, 4.0], [4.0, 60.0]]
    for first_near in (True, False):
        depths = np.array([[1.0] * 3, [0.0] * 3]) if first_near else np.array([[0.0] * 3, [1.0] * 3])
        colours = np.array([[200, 0, 0], [0, 0, 200]], dtype=np.uint8)
        image = _rasterise(np.array([square, square]), depths, colours, side)
        expected = colours[0] if first_near else colours[1]
        assert (image[10, 10] == expected).all()


def test_box_silhouette_and_shading_from_the_front():
    box = trimesh.creation.box(extents=(1.0, 0.5, 0.2))
    size = 160
    image = np.asarray(render_view(box, 0.0, 0.0, size=size, center=np.zeros(3), radius=1.0)).astype(int)
    covered = (np.abs(image - 255).max(axis=2) > 8).sum()
    scale = size / 2 / 1.05  # pixels per unit, as render_view frames the radius
    expected = (1.0 * scale) * (0.5 * scale)
    assert abs(covered - expected) / expected < 0.05
    # Only the front face (+z, facing the light at the camera) is seen: full shade.
    assert np.abs(image[size // 2, size // 2] - BASE_COLOUR).max() <= 1


def test_the_picture_does_not_depend_on_the_chunking(monkeypatch):
    from inrkit.plugins.sdf import render

    mesh = trimesh.creation.icosphere(subdivisions=3)
    whole = np.asarray(render_view(mesh, 35.0, 25.0, size=96))
    monkeypatch.setattr(render, "CHUNK_PAIRS", 50)  # smaller than the largest triangles: some go alone
    assert np.array_equal(np.asarray(render_view(mesh, 35.0, 25.0, size=96)), whole)
