"""Built-in SDF signal: fit a 3D shape's signed distance field, get a mesh back.

Registers the signal type ``sdf`` (meshes trimesh reads, oriented point
clouds, ``.npy`` SDF volumes; see :mod:`inrkit.plugins.sdf.io`), the losses
``sdf`` (L1 on signed distances; SIREN-style for point clouds) and
``sdf-eikonal`` (adds an eikonal and normal-alignment term), the mesh
exporters ``ply``, ``obj``, ``stl`` and ``glb`` (marching cubes at any
resolution, in the input's original coordinates) and ``npy`` (the field on a
grid). Each fit writes ``mesh.ply`` (128^3), ``views.png`` and mesh metrics
against the input (Chamfer, normal consistency, F-score, IoU). Uses only the
public plugin API.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from inrkit.plugin import (
    AssessRequest, Batch, ConfigError, ExporterType, ExportRequest, FitContext, FitDefaults, InputError, LossType,
    Option, Signal, SignalType, atomic_output, hookimpl, lazy_import, report_progress, stack
)

torch = lazy_import("torch")  # imported at first use: registering plugins must not import torch

if TYPE_CHECKING:
    import trimesh

#: Mesh formats read through trimesh (besides ``.npy`` SDF volumes).
MESH_EXTENSIONS = (".ply", ".obj", ".stl", ".off", ".glb", ".gltf")
#: Initial learning rate of inrkit's lattice models on an SDF when none is given (``FitDefaults.lr``). On the
#: bunny scan (49,723 parameters, 60 s on a 2-core CPU, one hidden layer) the core's 2e-3 reached a Chamfer
#: distance of 0.055% of the diagonal, 1e-3 0.048% and 5e-4 0.034% (benchmarks/README.md, "SDF learning rate").
SDF_LATTICE_LR = 5e-4

# trimesh, libigl and scikit-image (through .geometry, .io and .render) are imported where they are
# used: they take about 0.6 s, which every inrkit command would otherwise pay at plugin registration.


#: Marching-cubes resolution of the mesh written into every SDF run directory.
REPORT_RESOLUTION = 128
#: Default resolution of ``inrkit mesh`` and the mesh exporters.
EXPORT_RESOLUTION = 256
#: Largest marching-cubes grid per axis: 1024^3 float32 distances are 4 GiB before extraction.
MAX_RESOLUTION = 1024
#: Options of the mesh exporters (``inrkit mesh`` sets them from its flags; ``inrkit export --option``).
MESH_OPTIONS = (
    Option("level", float, default=0.0, help="iso-level of the surface, in the input's distance units"),
    Option("smooth", int, default=0, help="Taubin smoothing iterations", minimum=0, maximum=1000),
)
#: The stages of :func:`sdf_report`, reported as the phase "SDF report".
REPORT_STAGES = ("extracting the mesh", "sampling the input surface", "mesh metrics", "drawing views")
#: Steps apart in the seed of the uniform points an oriented point cloud's loss draws each step (a prime).
POINTS_SEED_STRIDE = 10_007
#: SIREN's weights for fitting from oriented points (Sitzmann et al. 2020, their sdf loss).
SIREN_WEIGHTS = {"surface": 3e3, "normals": 1e2, "eikonal": 5e1, "off_surface": 1e2}


def _gradient(model: torch.nn.Module, coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    coords = coords.detach().requires_grad_(True)
    output = model(coords)[:, :1]
    (gradient,) = torch.autograd.grad(output.sum(), coords, create_graph=True)
    return output, gradient


def _uniform_points(context: FitContext, count: int, like: torch.Tensor) -> torch.Tensor:
    seed = context.config.seed if context.config is not None else 0
    generator = torch.Generator().manual_seed(POINTS_SEED_STRIDE * (context.step + 1) + seed)
    return (torch.rand(count, like.shape[1], generator=generator) * 2 - 1).to(like.device, like.dtype)


def points_loss(context: FitContext, batch: Batch) -> torch.Tensor:
    """SIREN's loss from surface points and normals alone.

    Surface points: ``|f| = 0`` and ``grad f`` aligned with the normal; the
    batch's points plus as many uniform points in the cube: eikonal
    ``| |grad f| - 1 |``; the uniform points: ``exp(-100 |f|)``, which pushes
    values away from zero off the surface. Weights :data:`SIREN_WEIGHTS`.
    """
    surface = batch.extra["on_surface"][:, 0] > 0.5
    coords = batch.coords[surface]
    normals = batch.extra["normals"][surface]
    free = _uniform_points(context, max(1, batch.coords.shape[0]), batch.coords)
    output, gradient = _gradient(context.model, torch.cat([coords, free]))
    on, off = output[: len(coords)], output[len(coords) :]
    grad_on = gradient[: len(coords)]
    terms = SIREN_WEIGHTS["eikonal"] * torch.mean(torch.abs(gradient.norm(dim=1) - 1))
    terms = terms + SIREN_WEIGHTS["off_surface"] * torch.mean(torch.exp(-100 * torch.abs(off)))
    if len(coords):
        alignment = 1 - torch.nn.functional.cosine_similarity(grad_on, normals, dim=1)
        terms = terms + SIREN_WEIGHTS["surface"] * torch.mean(torch.abs(on))
        terms = terms + SIREN_WEIGHTS["normals"] * torch.mean(alignment)
    return terms


def sdf_loss(context: FitContext, batch: Batch) -> torch.Tensor:
    """L1 between the network and the sampled signed distances (DeepSDF's loss, unclamped).

    An oriented point cloud has no distances off the surface; it is fitted
    with :func:`points_loss` instead.
    """
    if context.signal.metadata.get("mode") == "points":
        return points_loss(context, batch)
    return torch.mean(torch.abs(context.predict(batch) - batch.target))


#: Scale of sdf-eikonal's regulariser at --loss-weight 1. Measured on a sphere (2,500 parameters,
#: 400 steps): 0.1 lowers the eikonal residual from 0.139 (plain sdf) to 0.119 at the same Chamfer
#: distance (0.027%); 1.0 raises the Chamfer distance to 0.74%.
EIKONAL_SCALE = 0.1


def sdf_eikonal_loss(context: FitContext, batch: Batch) -> torch.Tensor:
    """:func:`sdf_loss` plus ``0.1 x loss_weight`` x (eikonal residual on the batch + normal misalignment on its surface points).

    Needs the network's gradient at every batch point (double backward), so a
    step costs about three times an ``sdf`` step.
    """
    if context.signal.metadata.get("mode") == "points":
        return points_loss(context, batch)
    output, gradient = _gradient(context.model, batch.coords)
    loss = torch.mean(torch.abs(output - batch.target))
    weight = EIKONAL_SCALE * (getattr(context.config, "loss_weight", 1.0) if context.config is not None else 1.0)
    # 1 for meshes (distances in the network's units); a grid's own median slope for .npy volumes.
    slope = float(context.signal.metadata.get("gradient_norm", 1.0))
    regulariser = torch.mean(torch.abs(gradient.norm(dim=1) - slope))
    if "on_surface" in batch.extra:
        surface = batch.extra["on_surface"][:, 0] > 0.5
        if surface.any():
            cosine = torch.nn.functional.cosine_similarity(gradient[surface], batch.extra["normals"][surface], dim=1)
            regulariser = regulariser + torch.mean(1 - cosine)
    return loss + weight * regulariser


def _cube_resolution(options: dict, default: int) -> tuple[int, int, int]:
    requested = options.get("resolution")
    if requested is None:
        return (default,) * 3
    values = [int(v) for v in requested]
    if len(values) == 1:
        values = values * 3
    if len(values) != 3 or any(v < 8 or v > MAX_RESOLUTION for v in values):
        raise ConfigError(f"mesh resolution must be one or three whole numbers from 8 to {MAX_RESOLUTION} "
                          f"(e.g. 256 or 256x256x128), got {requested}")
    return tuple(values)


def extract_mesh(evaluate: Callable[[torch.Tensor], torch.Tensor], metadata: dict, resolution: tuple[int, int, int],
                 level: float = 0.0, smooth: int = 0, original: bool = True) -> trimesh.Trimesh:
    """Marching cubes of a fitted SDF; in the input's coordinates when ``original`` (else the network's).

    ``level`` is in the input's distance units.
    """
    import trimesh

    from inrkit.plugins.sdf.geometry import Transform, evaluate_grid, extract_surface

    extent = tuple(float(e) for e in metadata.get("domain_extent", (1.0, 1.0, 1.0)))
    scale = float(metadata.get("distance_scale", 1.0))
    volume = evaluate_grid(evaluate, resolution, extent)
    mesh = extract_surface(volume, extent, level / scale)
    if smooth and len(mesh.faces):
        report_progress("smoothing", 0, 1, "meshes", f"{int(smooth)} Taubin iterations")
        trimesh.smoothing.filter_taubin(mesh, iterations=int(smooth))
        report_progress("smoothing", 1, 1, "meshes")
    if original and len(mesh.faces):
        transform = Transform.from_dict(metadata["transform"])
        mesh = trimesh.Trimesh(transform.to_original(np.asarray(mesh.vertices)), mesh.faces, process=False)
    return mesh


def _check_recorded(request: ExportRequest) -> None:
    """The run must be a 3D SDF fit: run directories are untrusted, and a relabelled one must fail with one line."""

    def fail(key: str, value, valid: str) -> InputError:
        return InputError(f"the run's signal {key} is {value!r:.60}, it must be {valid} for an SDF run; "
                          "the run directory is not an SDF fit, is damaged or was edited by hand")

    if request.geometry.get("dims") != 3:
        raise fail("dims", request.geometry.get("dims"), "3")
    metadata = request.metadata
    extent = metadata.get("domain_extent", (1.0, 1.0, 1.0))
    if not isinstance(extent, (list, tuple)) or len(extent) != 3 or not all(
            isinstance(e, (int, float)) and not isinstance(e, bool) and 0 < e < float("inf") for e in extent):
        raise fail("metadata domain_extent", extent, "three positive numbers")
    scale = metadata.get("distance_scale", 1.0)
    if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not 0 < scale < float("inf"):
        raise fail("metadata distance_scale", scale, "a positive number")
    transform = metadata.get("transform")
    try:
        from inrkit.plugins.sdf.geometry import Transform

        parsed = Transform.from_dict(transform)
        numbers = np.asarray([*parsed.center, parsed.scale], dtype=np.float64)
        if len(parsed.center) != 3 or not np.isfinite(numbers).all() or parsed.scale <= 0:
            raise ValueError
    except (AttributeError, KeyError, TypeError, ValueError):
        raise fail("metadata transform", transform, "the normalising transform the loader recorded") from None


def export_mesh(request: ExportRequest) -> dict:
    """Marching cubes at ``resolution`` (default 256^3), optional Taubin ``smooth``ing, written by trimesh."""
    _check_recorded(request)
    resolution = _cube_resolution(dict(request.options), EXPORT_RESOLUTION)
    level = float(request.options.get("level", 0.0) or 0.0)
    smooth = int(request.options.get("smooth", 0) or 0)
    if smooth < 0:
        raise ConfigError(f"--smooth must be 0 or more iterations, got {smooth}")
    started = time.perf_counter()
    try:
        mesh = extract_mesh(request.evaluate, dict(request.metadata), resolution, level, smooth)
    except MemoryError:
        gib = 4 * resolution[0] * resolution[1] * resolution[2] / 2**30
        raise ConfigError(f"not enough memory for a {resolution[0]}x{resolution[1]}x{resolution[2]} grid "
                          f"({gib:.1f} GiB of distances, several times that while extracting); "
                          "use a smaller --resolution") from None
    if len(mesh.faces) == 0:
        raise ConfigError(f"the fitted field does not cross level {level} on a {resolution[0]}^3 grid, so there is no "
                          "surface to write; check the level or fit longer")
    file_type = request.path.suffix.lower().lstrip(".")
    with atomic_output(request.path) as temporary:
        mesh.export(temporary, file_type=file_type)
    return {"vertices": len(mesh.vertices), "faces": len(mesh.faces), "watertight": bool(mesh.is_watertight),
            "resolution": f"{resolution[0]}x{resolution[1]}x{resolution[2]}",
            "seconds": round(time.perf_counter() - started, 2)}


def export_volume(request: ExportRequest) -> dict:
    """The field on a ``resolution`` grid (default: the source grid, or 256^3) as a float32 ``.npy``, in input units."""
    from inrkit.plugins.sdf.geometry import evaluate_grid

    _check_recorded(request)
    shape = request.geometry.get("grid_shape")
    resolution = _cube_resolution(dict(request.options), EXPORT_RESOLUTION) if request.options.get("resolution") or not shape else tuple(shape)
    extent = tuple(float(e) for e in request.metadata.get("domain_extent", (1.0, 1.0, 1.0)))
    volume = evaluate_grid(request.evaluate, resolution, extent) * float(request.metadata.get("distance_scale", 1.0))
    with atomic_output(request.path) as temporary, open(temporary, "wb") as handle:
        np.save(handle, volume.astype(np.float32), allow_pickle=False)
    return {"shape": "x".join(str(n) for n in resolution)}


def reference_surface(signal: Signal) -> tuple[trimesh.Trimesh | None, np.ndarray, np.ndarray]:
    """The input's surface in the network's coordinates: (mesh or None for a point cloud, points, normals)."""
    import trimesh

    from inrkit.plugins.sdf.geometry import Transform, extract_surface, sample_reference
    from inrkit.plugins.sdf.io import read_shape

    mode = signal.metadata.get("mode")
    if mode == "points":
        return None, signal.points.numpy().astype(np.float64), signal.attributes["normals"].numpy().astype(np.float64)
    if mode == "grid":
        volume = signal.values[:, 0].reshape(signal.grid_shape).numpy()
        mesh = extract_surface(volume, tuple(signal.extent), 0.0)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            original = read_shape(Path(signal.source))
        transform = Transform.from_dict(signal.metadata["transform"])
        mesh = trimesh.Trimesh(transform.to_normalised(np.asarray(original.vertices)), original.faces, process=False)
    points, normals = sample_reference(mesh)
    return mesh, points, normals


def sdf_report(signal: Signal, evaluate: Callable[[torch.Tensor], torch.Tensor], run_dir: Path) -> dict[str, float]:
    """Extract ``mesh.ply`` at 128^3, compare it with the input surface, draw ``views.png``."""
    import trimesh

    from inrkit.plugins.sdf.geometry import Transform, diagonal_of, mesh_metrics
    from inrkit.plugins.sdf.render import render_views

    def stage(name: str) -> None:
        index = REPORT_STAGES.index(name) if name in REPORT_STAGES else len(REPORT_STAGES)
        report_progress("SDF report", index, len(REPORT_STAGES), "stages", name)

    stage("extracting the mesh")
    mesh = extract_mesh(evaluate, signal.metadata, (REPORT_RESOLUTION,) * 3, original=False)
    stage("sampling the input surface")
    reference, points, normals = reference_surface(signal)
    stage("mesh metrics")
    metrics = mesh_metrics(mesh, points, normals, diagonal_of(points), reference)
    metrics["mesh_resolution"] = float(REPORT_RESOLUTION)
    if len(mesh.faces):
        transform = Transform.from_dict(signal.metadata["transform"])
        exported = trimesh.Trimesh(transform.to_original(np.asarray(mesh.vertices)), mesh.faces, process=False)
        with atomic_output(run_dir / "mesh.ply") as temporary:
            exported.export(temporary, file_type="ply")
    summary = (f"Chamfer {100 * metrics['chamfer']:.3f}% of diagonal, normal consistency "
               f"{metrics['normal_consistency']:.3f}, F-score@1% {metrics['fscore']:.3f}"
               + (f", IoU {metrics['iou']:.3f}" if "iou" in metrics else "")
               + (", watertight" if metrics["watertight"] else ", NOT watertight"))
    stage("drawing views")
    rows = [render_views(mesh, title=f"fitted SDF, marching cubes {REPORT_RESOLUTION}^3: {summary}")]
    if reference is not None:
        rows.insert(0, render_views(reference, title="input surface"))
    with atomic_output(run_dir / "views.png") as temporary:
        stack(rows, horizontal=False).save(temporary, format="PNG")
    stage("done")
    return metrics


def assess_sdf(request: AssessRequest) -> dict[str, float]:
    """:func:`sdf_report`: mesh metrics against the input, ``mesh.ply`` and ``views.png``."""
    return sdf_report(request.signal, request.evaluate, request.run_dir)


def load_sdf(path: Path, seed: int = 0) -> Signal:
    """Load a mesh, an oriented point cloud or a ``.npy`` volume (:func:`inrkit.plugins.sdf.io.load_sdf`).

    ``seed`` draws a mesh's bank of samples: the fit's ``--seed`` unless ``--option seed=N`` is given.
    """
    from inrkit.plugins.sdf.io import load_sdf as load

    return load(path, seed=seed)


def sdf_bandlimit(signal: Signal, params: int) -> int:
    """``--bandlimit auto`` for SDFs: ``2.65 params^(1/6)`` (about 2.65 m^(1/3) for m input frequencies).

    Signed distance fields are smooth away from thin features, and a 3D
    lattice has few frequencies per axis for a given m, so the best bandlimit
    grows slowly with the model. Measured (60 s fits, 2-core CPU): 50k
    parameters on the bunny scan, Chamfer 0.052% at B = 16, 0.071% at 24,
    0.39% at 48; 3,000 parameters on a sphere, 0.19% at B = 12, 0.82% at 16.
    """
    return max(2, round(2.65 * params ** (1 / 6)))


@hookimpl
def inrkit_register_signals(register):
    register(
        SignalType(
            name="sdf",
            load=load_sdf,
            extensions=MESH_EXTENSIONS + (".npy",),
            description="3D signed distance fields from meshes (trimesh), oriented point clouds or .npy volumes",
            exporter=None,
            # FFN's paper fits 3D shapes (occupancy) with a Gaussian scale of 12 over the unit cube, the domain
            # inrkit's ffn maps coordinates to (Tancik et al. 2020, its 3d_shape_occupancy experiment).
            defaults=FitDefaults(loss="sdf", sampler="uniform", batch_size=16_384, bandlimit_fraction=None,
                                 suggest_bandlimit=sdf_bandlimit, params_fraction=0.2, lr=SDF_LATTICE_LR,
                                 model_defaults={"ffn_sigma": 12.0}),
            assess=assess_sdf,
            options=(Option("seed", int, help="seed of a mesh's bank of samples (default: --seed)", minimum=0),),
            show={"chamfer": "chamfer {value:.3%} of diagonal", "normal_consistency": "normal_consistency {value:.4f}",
                  "fscore": "fscore {value:.4f}", "iou": "iou {value:.4f}"},
        )
    )


@hookimpl
def inrkit_register_losses(register):
    register(LossType("sdf", sdf_loss, "L1 on signed distances; SIREN-style for oriented point clouds (SDF)",
                      signals=("sdf",)))
    register(LossType("sdf-eikonal", sdf_eikonal_loss,
                      "sdf plus 0.1 x loss-weight x (eikonal + normal alignment), with autograd gradients (SDF)",
                      signals=("sdf",)))


@hookimpl
def inrkit_register_exporters(register):
    for name in ("ply", "obj", "stl", "glb"):
        register(ExporterType(name, "sdf", (f".{name}",), export_mesh,
                              f"{name.upper()} mesh by marching cubes at any resolution, original coordinates",
                              MESH_OPTIONS))
    register(ExporterType("npy", "sdf", (".npy",), export_volume, "the field on a grid as float32 .npy"))


@hookimpl
def inrkit_register_commands(app):
    from inrkit.plugins.sdf.command import mesh_command

    app.command("mesh")(mesh_command)
