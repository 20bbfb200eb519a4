"""Software rendering of meshes to PNG with Pillow (no GPU, no OpenGL).

Orthographic views, back faces culled, triangles painted far to near and
shaded by the angle between their normal and a light at the camera. Good
enough to see holes, floaters and noise at a glance.
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


def _rotation(yaw: float, pitch: float) -> np.ndarray:
    a, b = math.radians(yaw), math.radians(pitch)
    turn = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    tilt = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    return tilt @ turn


def render_view(mesh: trimesh.Trimesh, yaw: float, pitch: float, size: int = 320,
                center: np.ndarray | None = None, radius: float | None = None) -> Image.Image:
    """One shaded orthographic view; the camera looks along -z after rotating the mesh by yaw then pitch."""
    supersample = 2
    canvas = Image.new("RGB", (size * supersample, size * supersample), (255, 255, 255))
    if len(mesh.faces) == 0:
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
    order = np.argsort(triangles[:, :, 2].mean(axis=1))  # far (small z) first
    scale = (size * supersample) / 2 / (radius * 1.05)
    pixels = np.empty(triangles.shape[:2] + (2,))
    pixels[..., 0] = triangles[..., 0] * scale + size * supersample / 2
    pixels[..., 1] = -triangles[..., 1] * scale + size * supersample / 2
    colours = (BASE_COLOUR[None, :] * shade[:, None]).astype(np.uint8)
    draw = ImageDraw.Draw(canvas)
    for i in order:
        colour = tuple(int(c) for c in colours[i])
        draw.polygon([tuple(p) for p in pixels[i]], fill=colour, outline=colour)
    return canvas.resize((size, size), Image.LANCZOS)


def render_views(mesh: trimesh.Trimesh, size: int = 320, title: str | None = None) -> Image.Image:
    """The default views side by side, each titled; an optional overall title above."""
    center = mesh.bounds.mean(axis=0) if len(mesh.faces) else None
    radius = float(np.linalg.norm(mesh.bounds[1] - mesh.bounds[0])) / 2 if len(mesh.faces) else None
    tiles = [titled(render_view(mesh, yaw, pitch, size, center, radius), name) for name, yaw, pitch in VIEWS]
    picture = stack(tiles)
    return titled(picture, title) if title else picture
