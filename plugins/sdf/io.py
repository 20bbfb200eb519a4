"""Loading shapes for the SDF signal.

Three inputs, three training modes (``Signal.metadata["mode"]``):

``mesh``
    Any mesh trimesh reads (PLY, OBJ, STL, OFF, GLB/GLTF). It is normalised
    into the cube with a margin, and a bank of signed-distance samples is
    drawn once: points on the surface, near it (Gaussian offsets at two
    scales) and uniform in the cube, with exact signed distances
    (:func:`~inrkit.plugins.sdf.geometry.signed_distance`).
``points``
    An oriented point cloud (a PLY with ``nx ny nz`` and no faces), fitted
    SIREN-style from surface points and normals alone.
``grid``
    A dense SDF volume saved as a 3D float ``.npy`` array, fitted as a
    gridded signal (its axes span ``[-1, 1]`` with the aspect ratio kept).

The transform from the network's coordinates back to the input's is kept in
the metadata, so meshes come back where the input was.
"""

from __future__ import annotations

import math
import os
import tokenize
import warnings
import zipfile
from pathlib import Path

import numpy as np
import trimesh

from inrkit.plugin import InputError, InrkitWarning, Signal, grid_extent, grid_nyquist, lazy_import
from inrkit.plugins.sdf.geometry import MeshDistance, Transform, fit_transform

torch = lazy_import("torch")  # imported at first use: registering plugins must not import torch

#: Fraction of the half-cube left empty around a normalised shape.
MARGIN = 0.1
#: Samples in the training bank of a mesh: on the surface, near it at two scales, uniform in the cube.
BANK = {"surface": 50_000, "near_fine": 75_000, "near_coarse": 75_000, "uniform": 50_000}
#: Standard deviations of the near-surface offsets, in normalised units (the cube is [-1, 1]^3).
NEAR_SIGMAS = {"near_fine": 0.01, "near_coarse": 0.05}
#: Grid resolution whose Nyquist frequency bounds the lattice of a mesh or point cloud.
WORKING_RESOLUTION = 256
#: Seed of the bank's random draws (the bank is a deterministic function of the file).
BANK_SEED = 0


def _fail(path: Path, problem: str) -> InputError:
    return InputError(f"{path}: {problem}")


def _detail(error: BaseException) -> str:
    """A library's error as a short phrase on one line (its messages may quote the file)."""
    text = str(error).strip()
    return text.splitlines()[0][:160] if text else type(error).__name__


def load_sdf(path: Path, seed: int = BANK_SEED) -> Signal:
    """Load a mesh, an oriented point cloud or a ``.npy`` SDF volume (see the module docstring).

    ``seed`` draws a mesh's bank of samples (``inrkit fit --seed``).
    """
    path = Path(path)
    if path.stat().st_size == 0:
        raise _fail(path, "the file is empty; pass a mesh (PLY, OBJ, STL, OFF, GLB), an oriented point cloud or a .npy SDF grid")
    if path.suffix.lower() == ".npy":
        return load_volume(path)
    shape = read_shape(path)
    if isinstance(shape, trimesh.Trimesh):
        return mesh_signal(shape, path, seed)
    points, normals = shape
    return point_cloud_signal(points, normals, path)


def read_shape(path: Path) -> trimesh.Trimesh | tuple[np.ndarray, np.ndarray]:
    """A validated mesh, or ``(points, normals)`` of an oriented point cloud, in the file's coordinates.

    Raises
    ------
    InputError
        Unreadable, empty, non-finite, flat, or a point cloud without normals.
    """
    path = Path(path)
    try:
        # Unprocessed, so NaN vertices are seen (processing drops them) and point normals stay aligned.
        loaded = trimesh.load(str(path), process=False)
    except Exception as error:  # trimesh raises many types for bad files
        raise _fail(path, f"not a mesh trimesh can read ({type(error).__name__}: {_detail(error)}); "
                          "use PLY, OBJ, STL, OFF, GLB/GLTF or a .npy SDF grid") from None
    if isinstance(loaded, trimesh.Scene):
        meshes = [g for g in loaded.dump() if isinstance(g, trimesh.Trimesh)] if loaded.geometry else []
        loaded = trimesh.util.concatenate(meshes) if meshes else trimesh.Trimesh()
    if isinstance(loaded, trimesh.PointCloud):
        vertices = np.asarray(loaded.vertices, dtype=np.float64)
        _check_vertices(path, vertices)
        normals = _ply_normals(path, loaded)
        if normals is None:
            raise _fail(path, "is a point cloud without normals; an SDF needs a mesh with faces, "
                              "or points with normals (PLY properties nx, ny, nz)")
        if normals.shape != vertices.shape:
            raise _fail(path, f"has {len(normals)} normals for {len(vertices)} points; every point needs one normal")
        lengths = np.linalg.norm(normals, axis=1)
        if not np.all(np.isfinite(normals)) or np.any(lengths < 1e-12):
            raise _fail(path, "has zero, NaN or infinite normals; every point needs a unit normal")
        _check_extent(path, vertices)
        return vertices, normals / lengths[:, None]
    if not isinstance(loaded, trimesh.Trimesh):
        raise _fail(path, f"holds a {type(loaded).__name__}, not a mesh; use a triangle mesh or an oriented point cloud")
    vertices = np.asarray(loaded.vertices, dtype=np.float64)
    _check_vertices(path, vertices)
    if len(loaded.faces) == 0:
        raise _fail(path, "has vertices but no faces; pass a triangle mesh, or a point cloud with normals (nx, ny, nz)")
    faces = np.asarray(loaded.faces)
    if faces.min() < 0 or faces.max() >= len(vertices):
        bad = int(faces.min() if faces.min() < 0 else faces.max())
        raise _fail(path, f"has faces that refer to vertex {bad} but only vertices 0 to {len(vertices) - 1} exist; "
                          "the file is damaged")
    _check_extent(path, vertices)
    loaded = trimesh.Trimesh(vertices, loaded.faces, process=True)  # merge duplicate vertices (STL), drop unused
    if not loaded.area > 0:
        raise _fail(path, "has only degenerate (zero-area) faces; the mesh has no surface to fit")
    if not loaded.is_watertight:
        open_edges = int(len(trimesh.grouping.group_rows(loaded.edges_sorted, require_count=1)))
        warnings.warn(InrkitWarning(
            f"{path.name} is not watertight ({open_edges} boundary edges); inside and outside come from the "
            "generalized winding number, which closes small holes"), stacklevel=2)
    return loaded


def _check_vertices(path: Path, vertices: np.ndarray) -> None:
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise _fail(path, f"has vertices of shape {list(vertices.shape)}, not x, y, z per vertex; "
                          "the file is damaged or is not a 3D mesh")
    if len(vertices) == 0:
        raise _fail(path, "contains no vertices (an empty mesh); pass a mesh with a surface")
    if not np.all(np.isfinite(vertices)):
        raise _fail(path, "has NaN or infinite vertex coordinates; repair the mesh first")


def _check_extent(path: Path, vertices: np.ndarray) -> None:
    extent = vertices.max(axis=0) - vertices.min(axis=0)
    if extent.max() <= 0 or extent.min() <= 1e-6 * extent.max():
        raise _fail(path, f"is flat or a single point (extent {np.round(extent, 6).tolist()}): it encloses no volume, "
                          "so it has no signed distance field; pass a solid shape")


def _ply_normals(path: Path, cloud: trimesh.PointCloud) -> np.ndarray | None:
    raw = cloud.metadata.get("_ply_raw", {}).get("vertex", {}).get("data")
    try:
        if isinstance(raw, dict) and all(k in raw for k in ("nx", "ny", "nz")):
            return np.stack([np.asarray(raw[k], dtype=np.float64).reshape(-1) for k in ("nx", "ny", "nz")], axis=1)
        if isinstance(raw, np.ndarray) and raw.dtype.names and {"nx", "ny", "nz"} <= set(raw.dtype.names):
            return np.stack([raw[k].astype(np.float64).reshape(-1) for k in ("nx", "ny", "nz")], axis=1)
    except (ValueError, TypeError):  # a truncated ASCII row leaves ragged columns
        raise _fail(path, "has normals (nx, ny, nz) that are not one number each per point; "
                          "the file is truncated or damaged") from None
    return None


def _nyquist() -> tuple[float, float, float]:
    return grid_nyquist((WORKING_RESOLUTION,) * 3, (1.0, 1.0, 1.0))


def sample_bank(mesh: trimesh.Trimesh, seed: int = BANK_SEED) -> dict[str, np.ndarray]:
    """Training samples of a normalised mesh: ``points [N,3]``, ``distances [N]``, ``normals [N,3]``, ``on_surface [N]``."""
    rng = np.random.default_rng(seed)
    surface, face_index = trimesh.sample.sample_surface(mesh, BANK["surface"], seed=seed)
    surface_normals = mesh.face_normals[face_index]
    parts = [surface]
    for name, sigma in NEAR_SIGMAS.items():
        anchors, _ = trimesh.sample.sample_surface(mesh, BANK[name], seed=seed + len(parts))
        parts.append(anchors + rng.normal(scale=sigma, size=anchors.shape))
    parts.append(rng.uniform(-1.0, 1.0, size=(BANK["uniform"], 3)))
    off_surface = np.clip(np.concatenate(parts[1:]), -1.0, 1.0)
    distances = _signed_distances_reporting(off_surface, [len(p) for p in parts[1:]], mesh)
    points = np.concatenate([surface, off_surface])
    normals = np.zeros_like(points)
    normals[: len(surface)] = surface_normals
    on_surface = np.zeros(len(points), dtype=bool)
    on_surface[: len(surface)] = True
    return {
        "points": points,
        "distances": np.concatenate([np.zeros(len(surface)), distances]),
        "normals": normals,
        "on_surface": on_surface,
    }


def _signed_distances_reporting(points: np.ndarray, sizes: list[int], mesh: trimesh.Trimesh) -> np.ndarray:
    """:func:`signed_distance` of the bank's points, one query per kind of sample (for progress), one tree."""
    from inrkit.plugin import report_progress

    phase, total, done, distances = "SDF sample bank", len(points), 0, []
    measure = MeshDistance(mesh.vertices, mesh.faces)
    for part in np.split(points, np.cumsum(sizes)[:-1]):
        report_progress(phase, done, total, "points", "distances")
        distances.append(measure.unsigned(part))
        done += len(part)
    report_progress(phase, total, total, "points", "inside or outside")
    return np.where(measure.inside(points), -1.0, 1.0) * np.concatenate(distances)


def mesh_signal(mesh: trimesh.Trimesh, path: Path | None = None, seed: int = BANK_SEED) -> Signal:
    """The SDF signal of a mesh: a bank of signed-distance samples in the normalised cube."""
    transform = fit_transform(np.asarray(mesh.vertices), MARGIN)
    normalised = trimesh.Trimesh(transform.to_normalised(np.asarray(mesh.vertices)), mesh.faces, process=False)
    bank = sample_bank(normalised, seed)
    values = torch.from_numpy(bank["distances"]).float()[:, None]
    return Signal(
        values=values,
        nyquist=_nyquist(),
        data_range=float(values.max() - values.min()),
        points=torch.from_numpy(bank["points"]).float(),
        metadata={
            "mode": "mesh",
            "transform": transform.to_dict(),
            "domain_extent": [1.0, 1.0, 1.0],
            "distance_scale": transform.scale,
            "vertices": int(len(mesh.vertices)),
            "faces": int(len(mesh.faces)),
            "watertight": bool(mesh.is_watertight),
            "bank": dict(BANK),
            "near_sigmas": dict(NEAR_SIGMAS),
        },
        source=str(path) if path else None,
        attributes={
            "normals": torch.from_numpy(bank["normals"]).float(),
            "on_surface": torch.from_numpy(bank["on_surface"]).float()[:, None],
        },
    )


def point_cloud_signal(points: np.ndarray, normals: np.ndarray, path: Path | None = None) -> Signal:
    """The SDF signal of an oriented point cloud: surface points (distance 0) with their normals."""
    if len(points) < 16:
        raise _fail(path or Path("<points>"), f"has only {len(points)} points; an oriented point cloud needs at least 16")
    transform = fit_transform(points, MARGIN)
    return Signal(
        values=torch.zeros(len(points), 1),
        nyquist=_nyquist(),
        data_range=2.0,
        points=torch.from_numpy(transform.to_normalised(points)).float(),
        metadata={"mode": "points", "transform": transform.to_dict(), "domain_extent": [1.0, 1.0, 1.0],
                  "distance_scale": transform.scale, "points": int(len(points))},
        source=str(path) if path else None,
        attributes={"normals": torch.from_numpy(normals).float(), "on_surface": torch.ones(len(points), 1)},
    )


def _median_slope(volume: np.ndarray, spacing: float) -> float:
    """Median |grad| of a grid near its zero level, per unit of the network's coordinates.

    A true SDF in voxel units has slope 1/spacing there; the eikonal loss aims at it.
    """
    gradient = np.stack(np.gradient(volume.astype(np.float64), spacing), axis=-1)
    norm = np.linalg.norm(gradient, axis=-1)
    near = np.abs(volume) <= np.quantile(np.abs(volume), 0.1)
    return float(np.median(norm[near]))


def _available_memory() -> int | None:
    """Bytes of memory free for a new allocation (Linux ``MemAvailable``), or None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _gib(count: int) -> str:
    if count >= 2**30:
        return f"{count / 2**30:,.1f} GiB"
    return f"{count / 2**20:,.1f} MiB" if count >= 2**20 else f"{count:,} bytes"


def _check_npy_header(path: Path) -> None:
    """Refuse a ``.npy`` file whose header claims more data than the file holds or memory can take.

    Only the header is read (numpy allocates the whole array before it reads
    the data, so a forged shape would otherwise ask for petabytes).
    """
    fmt = np.lib.format
    with open(path, "rb") as handle:
        try:
            version = fmt.read_magic(handle)
            if version == (1, 0):
                shape, _, dtype = fmt.read_array_header_1_0(handle)
            elif version == (2, 0):
                shape, _, dtype = fmt.read_array_header_2_0(handle)
            else:  # 3.0 only stores structured dtypes with Unicode field names, never a float grid
                raise ValueError(f"format version {version[0]}.{version[1]}; a float grid is saved as 1.0 or 2.0")
        except (ValueError, EOFError, SyntaxError, TypeError, IndexError, tokenize.TokenError) as error:
            raise _fail(path, f"is not a readable .npy file ({_detail(error)}); save the grid with numpy.save") from None
        offset = handle.tell()
    size = path.stat().st_size
    if not all(0 <= n < 2**63 for n in shape):
        raise _fail(path, f"has a header with an impossible shape {shape} (a dimension is negative or over 2**63); "
                          "re-save the grid with numpy.save")
    if dtype.hasobject:
        return  # np.load refuses pickled objects below, without allocating
    claimed = math.prod(shape) * dtype.itemsize
    if claimed > size - offset:
        raise _fail(path, f"is truncated or forged: its header claims a {dtype} array of shape {shape} "
                          f"({claimed:,} bytes) but the file holds {size - offset:,} bytes of data; "
                          "re-save the grid with numpy.save")
    free = _available_memory()
    if free is not None and claimed > free:
        raise _fail(path, f"holds a {dtype} grid of shape {shape} ({_gib(claimed)}), more than the {_gib(free)} of "
                          "memory free; downsample the grid or free memory")


def load_volume(path: Path) -> Signal:
    """A dense SDF volume from a ``.npy`` file holding a 3D float array (negative inside)."""
    _check_npy_header(path)
    try:
        volume = np.load(path, allow_pickle=False)
    except ValueError as error:
        raise _fail(path, f"is not a plain .npy array ({_detail(error)}); save the grid with numpy.save, no pickled objects") from None
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        raise _fail(path, f"is not a readable .npy file ({_detail(error)}); save the grid with numpy.save") from None
    except MemoryError:
        raise _fail(path, "is too large to load into the memory free; downsample the grid or free memory") from None
    if not isinstance(volume, np.ndarray) or volume.ndim != 3:
        shape = getattr(volume, "shape", None)
        raise _fail(path, f"holds an array of shape {shape}, not a 3D grid; an SDF volume is a [X, Y, Z] float array")
    if volume.dtype.kind != "f":
        raise _fail(path, f"holds {volume.dtype} values, not floats; save the signed distances as float32 or float64")
    if min(volume.shape) < 2:
        raise _fail(path, f"grid {volume.shape} needs at least 2 samples per axis")
    if not np.all(np.isfinite(volume)):
        raise _fail(path, "contains NaN or infinite distances; clean the grid first")
    if not (volume.min() < 0 < volume.max()):
        raise _fail(path, "has no surface: the distances never change sign (negative inside, positive outside)")
    shape = tuple(int(n) for n in volume.shape)
    extent = grid_extent(shape)
    spacing = 2.0 / (max(shape) - 1)
    values = torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32).reshape(-1, 1))
    # Back to voxel indices, the coordinates marching cubes gives on the input grid itself.
    transform = Transform(tuple((n - 1) / 2.0 for n in shape), 1.0 / spacing)
    return Signal.from_grid(
        values,
        shape,
        data_range=float(values.max() - values.min()),
        metadata={"mode": "grid", "transform": transform.to_dict(), "domain_extent": list(extent),
                  "distance_scale": 1.0, "gradient_norm": _median_slope(volume, spacing)},
        source=str(path),
    )
