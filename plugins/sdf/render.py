"""Software rendering of meshes to PNG with Pillow (no GPU, no OpenGL).

Orthographic views, back faces culled, triangles rasterised with a depth
buffer in numpy and shaded by the angle between their normal and a light at
the camera. Good enough to see holes, floaters and noise at a glance.
"""

from __future__ import annotations

import math

import numpy as np
import trimesh
from PIL import Image, ImageDraw

from inrkit.plugin import stack, titled

#: (name, yaw, pitch) in degrees of the default views; the name says where the camera is.
VIEWS = (("camera at +z", 0.0, 0.0), ("camera at -x", 90.0, 0.0), ("camera at +y", 0.0, 90.0),
         ("camera at -y", 0.0, -90.0), ("oblique", 35.0, 25.0))
BASE_COLOUR = np.array([150.0, 170.0, 200.0])
#: Triangle-pixel pairs rasterised at once (bounds the rasteriser's memory; a larger triangle goes alone).
CHUNK_PAIRS = 1 << 22


def _rotation(yaw: float, pitch: float) -> np.ndarray:
    a, b = math.radians(yaw), math.radians(pitch)
    turn = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    tilt = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    return tilt @ turn


def _rasterise(pixels: np.ndarray, depth: np.ndarray, colours: np.ndarray, side: int) -> np.ndarray:
    """Flat-shaded triangles on a white ``side`` x ``side`` canvas with a depth buffer; the nearest (largest z) wins.

    A pixel belongs to a triangle when its centre is inside it (barycentric
    weights >= 0, with a hair of tolerance so shared edges leave no cracks).
    The work is done in chunks of triangle-pixel pairs over each triangle's
    bounding box, so memory stays bounded whatever the triangle sizes.
    """
    image = np.full((side * side, 3), 255, dtype=np.uint8)
    best = np.full(side * side, -np.inf)
    # Pixel (i, j) has its centre at (i + 0.5, j + 0.5): the pixels whose centres the bounding box holds.
    low = np.clip(np.ceil(pixels.min(axis=1) - 0.5), 0, side - 1).astype(np.int64)
    high = np.clip(np.floor(pixels.max(axis=1) - 0.5), -1, side - 1).astype(np.int64)
    a, b, c = pixels[:, 0], pixels[:, 1], pixels[:, 2]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    keep = np.flatnonzero((np.abs(area) > 1e-12) & (high >= low).all(axis=1))
    width, height = (high - low + 1)[keep, 0], (high - low + 1)[keep, 1]
    counts = width * height
    ends = np.cumsum(counts)  # triangle i's pairs are [ends[i] - counts[i], ends[i]) of the whole sequence
    start = 0
    while start < len(keep):
        base = ends[start] - counts[start]
        stop = max(start + 1, int(np.searchsorted(ends, base + CHUNK_PAIRS, side="right")))
        tri = np.repeat(np.arange(start, stop), counts[start:stop])
        offset = np.arange(base, ends[stop - 1]) - np.repeat(ends[start:stop] - counts[start:stop], counts[start:stop])
        index = keep[tri]
        px = low[index, 0] + offset % width[tri]
        py = low[index, 1] + offset // width[tri]
        x, y = px + 0.5, py + 0.5
        ta, tb, tc = a[index], b[index], c[index]
        w_a = ((tb[:, 0] - x) * (tc[:, 1] - y) - (tb[:, 1] - y) * (tc[:, 0] - x)) / area[index]
        w_b = ((tc[:, 0] - x) * (ta[:, 1] - y) - (tc[:, 1] - y) * (ta[:, 0] - x)) / area[index]
        w_c = 1.0 - w_a - w_b
        inside = (w_a >= -1e-9) & (w_b >= -1e-9) & (w_c >= -1e-9)
        z = (w_a * depth[index, 0] + w_b * depth[index, 1] + w_c * depth[index, 2])[inside]
        where, index = (py * side + px)[inside], index[inside]
        np.maximum.at(best, where, z)  # the depth buffer: the nearest depth so far at each pixel
        nearest = z >= best[where]
        image[where[nearest]] = colours[index[nearest]]
        start = stop
    return image.reshape(side, side, 3)


def render_view(mesh: trimesh.Trimesh, yaw: float, pitch: float, size: int = 320,
                center: np.ndarray | None = None, radius: float | None = None) -> Image.Image:
    """One shaded orthographic view; the camera looks along -z after rotating the mesh by yaw then pitch."""
    supersample = 2
    if len(mesh.faces) == 0:
        canvas = Image.new("RGB", (size * supersample, size * supersample), (255, 255, 255))
        ImageDraw.Draw(canvas).text((8, 8), "empty mesh", fill=(200, 0, 0))
        return canvas.resize((size, size), Image.LANCZOS)
    center = mesh.bounds.mean(axis=0) if center is None else center
    radius = radius or float(np.linalg.norm(mesh.bounds[1] - mesh.bounds[0])) / 2 or 1.0
    rotation = _rotation(yaw, pitch)
    vertices = (np.asarray(mesh.vertices) - center) @ rotation.T
    normals = np.asarray(mesh.face_normals) @ rotation.T
    facing = normals[:, 2] > 0
    faces = np.asarray(mesh.faces)[facing]
    shade = 0.25 + 0.75 * np.clip(normals[facing, 2], 0, 1)
    triangles = vertices[faces]
    side = size * supersample
    scale = side / 2 / (radius * 1.05)
    pixels = np.empty(triangles.shape[:2] + (2,))
    pixels[..., 0] = triangles[..., 0] * scale + side / 2
    pixels[..., 1] = -triangles[..., 1] * scale + side / 2
    colours = (BASE_COLOUR[None, :] * shade[:, None]).astype(np.uint8)
    canvas = Image.fromarray(_rasterise(pixels, triangles[..., 2], colours, side))
    return canvas.resize((size, size), Image.LANCZOS)


def render_views(mesh: trimesh.Trimesh, size: int = 320, title: str | None = None) -> Image.Image:
    """The default views side by side, each titled; an optional overall title above."""
    center = mesh.bounds.mean(axis=0) if len(mesh.faces) else None
    radius = float(np.linalg.norm(mesh.bounds[1] - mesh.bounds[0])) / 2 if len(mesh.faces) else None
    tiles = [titled(render_view(mesh, yaw, pitch, size, center, radius), name) for name, yaw, pitch in VIEWS]
    picture = stack(tiles)
    return titled(picture, title) if title else picture
