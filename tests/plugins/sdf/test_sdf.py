import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from typer.testing import CliRunner

from inrkit.cli.main import app, load_plugin_commands
from inrkit.errors import InputError, InrkitWarning
from inrkit.plugins.sdf import geometry, io
from inrkit.plugins.sdf.geometry import (
    Transform,
    box_sdf,
    evaluate_grid,
    extract_surface,
    fit_transform,
    grid_axes,
    mesh_metrics,
    sample_reference,
    signed_distance,
    sphere_sdf,
    torus_sdf,
)

load_plugin_commands()  # `inrkit mesh` is the SDF plugin's command
runner = CliRunner()
DATASETS = Path(__file__).resolve().parents[3] / "datasets"


@pytest.fixture
def small_bank(monkeypatch):
    """Small training banks and metric samples so that CLI fits take seconds."""
    monkeypatch.setattr(io, "BANK", {"surface": 3000, "near_fine": 4000, "near_coarse": 4000, "uniform": 3000})
    monkeypatch.setattr(geometry, "METRIC_POINTS", 5000)
    monkeypatch.setattr(geometry, "IOU_POINTS", 5000)
    import inrkit.plugins.sdf as sdf

    monkeypatch.setattr(sdf, "REPORT_RESOLUTION", 48)


def _queries(count=4000, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (count, 3))


# Signed distance against closed forms.


def test_signed_distance_of_a_box_is_exact():
    half = np.array([0.5, 0.3, 0.2])
    mesh = trimesh.creation.box(extents=2 * half)
    points = _queries()
    assert np.max(np.abs(signed_distance(points, mesh.vertices, mesh.faces) - box_sdf(points, half))) < 1e-9


def test_signed_distance_of_a_sphere_within_its_tessellation_error():
    mesh = trimesh.creation.icosphere(subdivisions=5, radius=0.5)
    points = _queries()
    exact = sphere_sdf(points, 0.5)
    # Vertices lie on the sphere; flat faces sit inside it by at most r (1 - cos(edge/r)) < 2.5e-4 here.
    assert np.max(np.abs(signed_distance(points, mesh.vertices, mesh.faces) - exact)) < 1e-3


def test_signed_distance_of_a_torus_and_its_sign():
    mesh = trimesh.creation.torus(0.5, 0.2, major_sections=128, minor_sections=64)
    points = _queries()
    exact = torus_sdf(points, 0.5, 0.2)
    computed = signed_distance(points, mesh.vertices, mesh.faces)
    assert np.max(np.abs(computed - exact)) < 2e-3
    clear = np.abs(exact) > 2e-3
    assert np.array_equal(np.sign(computed[clear]), np.sign(exact[clear]))


def test_sign_survives_a_hole():
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.5)
    top = sphere.triangles_center[:, 2] > 0.47  # cut a cap: a hole of radius ~0.15
    open_sphere = trimesh.Trimesh(sphere.vertices, sphere.faces[~top])
    assert not open_sphere.is_watertight
    points = _queries()
    exact = sphere_sdf(points, 0.5)
    computed = signed_distance(points, open_sphere.vertices, open_sphere.faces)
    away = (np.abs(exact) > 0.02) & (points[:, 2] < 0.3)
    assert np.array_equal(np.sign(computed[away]), np.sign(exact[away]))


# Marching cubes and metrics.


def _grid(fn, n=48, extent=(1.0, 1.0, 1.0)):
    axes = grid_axes((n, n, n), extent)
    return fn(np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1))


def test_marching_cubes_of_a_sphere_is_closed_outward_and_on_the_sphere():
    mesh = extract_surface(_grid(lambda p: sphere_sdf(p, 0.6)), (1.0, 1.0, 1.0))
    assert mesh.is_watertight
    assert mesh.volume == pytest.approx(4 / 3 * math.pi * 0.6**3, rel=0.01)  # positive: normals point out
    assert np.max(np.abs(np.linalg.norm(mesh.vertices, axis=1) - 0.6)) < 2 / 47 / 4


def test_surface_leaving_the_grid_is_capped():
    mesh = extract_surface(_grid(lambda p: box_sdf(p, np.array([0.5, 0.5, 2.0]))), (1.0, 1.0, 1.0))
    assert mesh.is_watertight and mesh.bounds[1, 2] == pytest.approx(1.0, abs=0.05)


def test_mesh_metrics_of_concentric_spheres_match_closed_form():
    reference = trimesh.creation.icosphere(subdivisions=6, radius=0.5)
    bigger = trimesh.creation.icosphere(subdivisions=6, radius=0.505)
    points, normals = sample_reference(reference, 20_000)
    metrics = mesh_metrics(bigger, points, normals, diagonal=float(np.linalg.norm([1, 1, 1])), reference_mesh=reference,
                           iou_points=200_000)
    diagonal = math.sqrt(3)  # of the reference's bounding box, 2r on a side
    assert metrics["chamfer"] == pytest.approx(0.005 / diagonal, rel=0.03)
    assert metrics["normal_consistency"] > 0.999
    assert metrics["fscore"] == 1.0  # 0.005 is under 1% of the diagonal
    assert metrics["iou"] == pytest.approx((0.5 / 0.505) ** 3, abs=0.01)
    assert metrics["watertight"] == 1.0


def test_grid_evaluation_in_slabs_equals_direct_evaluation(monkeypatch):
    monkeypatch.setattr(geometry, "SLAB_POINTS", 500)  # many slabs
    fn = lambda c: (c[:, :1] * 2 + c[:, 1:2] - c[:, 2:3] ** 2)  # noqa: E731
    volume = evaluate_grid(fn, (7, 9, 11), (1.0, 0.5, 0.8))
    axes = grid_axes((7, 9, 11), (1.0, 0.5, 0.8))
    x, y, z = np.meshgrid(*axes, indexing="ij")
    assert np.allclose(volume, 2 * x + y - z**2, atol=1e-6)


def test_normalisation_round_trips():
    points = np.random.default_rng(1).normal(size=(500, 3)) * [3, 1, 0.5] + [10, -4, 2]
    transform = fit_transform(points, margin=0.1)
    normalised = transform.to_normalised(points)
    assert np.max(np.abs(normalised)) == pytest.approx(0.9)
    assert np.allclose(transform.to_original(normalised), points)
    assert Transform.from_dict(json.loads(json.dumps(transform.to_dict()))) == transform


# Fitting.


def _write_mesh(path: Path, mesh: trimesh.Trimesh) -> Path:
    mesh.export(path)
    return path


def test_fit_sphere_then_mesh_in_original_coordinates(tmp_path, small_bank):
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=2.0)
    sphere.apply_translation([5.0, -1.0, 3.0])
    source = _write_mesh(tmp_path / "ball.ply", sphere)
    run = tmp_path / "run"
    result = runner.invoke(app, ["fit", str(source), "-o", str(run), "--steps", "300", "--params", "3000", "--quiet"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((run / "metrics.json").read_text())["final"]
    assert metrics["chamfer"] < 0.01 and metrics["watertight"] == 1.0 and metrics["iou"] > 0.9
    assert (run / "views.png").is_file() and (run / "mesh.ply").is_file()

    # The eikonal residual |grad f| - 1 of the fitted sphere, near the surface, in normalised units.
    from inrkit.checkpoint import load_run

    model = load_run(run).model
    coords = torch.tensor(np.random.default_rng(3).normal(size=(2000, 3)), dtype=torch.float32)
    coords = coords / coords.norm(dim=1, keepdim=True) * (0.9 + 0.1 * torch.rand(2000, 1) - 0.05)
    coords.requires_grad_(True)
    (gradient,) = torch.autograd.grad(model(coords).sum(), coords)
    assert float(torch.mean(torch.abs(gradient.norm(dim=1) - 1))) < 0.1

    out = tmp_path / "ball.obj"
    result = runner.invoke(app, ["mesh", str(run), "--resolution", "64", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "watertight True" in result.output
    exported = trimesh.load(out)
    # A tiny, briefly trained model may leave small floaters; the main surface is the sphere.
    main = max(exported.split(only_watertight=False), key=lambda part: part.area)
    assert np.allclose(main.bounds, sphere.bounds, atol=0.1)  # radius 2: within 2.5%
    assert main.volume == pytest.approx(sphere.volume, rel=0.05)

    grid = tmp_path / "field.npy"
    assert runner.invoke(app, ["export", str(run), "--resolution", "16", "-o", str(grid)]).exit_code == 0
    field = np.load(grid)
    assert field.shape == (16, 16, 16) and field.min() < 0 < field.max()


def test_fit_oriented_point_cloud(tmp_path, small_bank):
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=1.0)
    header = ("ply\nformat ascii 1.0\nelement vertex %d\nproperty float x\nproperty float y\nproperty float z\n"
              "property float nx\nproperty float ny\nproperty float nz\nend_header\n" % len(sphere.vertices))
    rows = "\n".join(" ".join(f"{v:.6f}" for v in (*p, *n)) for p, n in zip(sphere.vertices, sphere.vertex_normals))
    source = tmp_path / "cloud.ply"
    source.write_text(header + rows + "\n")
    run = tmp_path / "run"
    result = runner.invoke(app, ["fit", str(source), "-o", str(run), "--steps", "150", "--params", "3000", "--quiet"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((run / "metrics.json").read_text())["final"]
    assert "iou" not in metrics and metrics["chamfer"] < 0.05


def test_fit_sdf_volume(tmp_path, small_bank):
    source = tmp_path / "vol.npy"
    np.save(source, _grid(lambda p: torus_sdf(p, 0.5, 0.2), n=24).astype(np.float32))
    run = tmp_path / "run"
    result = runner.invoke(app, ["fit", str(source), "-o", str(run), "--steps", "150", "--params", "3000", "--quiet"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((run / "metrics.json").read_text())["final"]
    assert metrics["chamfer"] < 0.03
    out = tmp_path / "torus.stl"
    assert runner.invoke(app, ["mesh", str(run), "--resolution", "32", "-o", str(out)]).exit_code == 0
    # Back in voxel coordinates of the 24^3 input: the torus spans about 0.7 / (2/23) voxels on each side of 11.5.
    bounds = trimesh.load(out).bounds
    assert np.allclose(bounds[:, :2], [[11.5 - 0.7 * 11.5, 11.5 - 0.7 * 11.5], [11.5 + 0.7 * 11.5] * 2], atol=1.0)


def test_non_watertight_mesh_warns_and_fits(tmp_path, small_bank):
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=1.0)
    keep = sphere.triangles_center[:, 2] < 0.95
    source = _write_mesh(tmp_path / "open.ply", trimesh.Trimesh(sphere.vertices, sphere.faces[keep]))
    with pytest.warns(InrkitWarning, match="not watertight"):
        io.read_shape(source)
    result = runner.invoke(app, ["fit", str(source), "-o", str(tmp_path / "run"), "--steps", "5", "--params", "2000"])
    assert result.exit_code == 0, result.output
    assert "warning: open.ply is not watertight" in result.output


# Bad input: one clear line, exit 2, nothing written.


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    files = {}
    text = tmp_path / "text.ply"
    text.write_text("hello, this is not a mesh\n")
    files["not a mesh"] = (text, "not a mesh trimesh can read")
    empty = tmp_path / "empty.obj"
    empty.write_bytes(b"")
    files["empty file"] = (empty, "empty")
    nothing = tmp_path / "nothing.obj"
    nothing.write_text("# no vertices\n")
    files["empty mesh"] = (nothing, "no vertices")
    cloud = tmp_path / "cloud.ply"
    trimesh.PointCloud(np.random.default_rng(0).normal(size=(100, 3))).export(cloud)
    files["no normals"] = (cloud, "without normals")
    flat = tmp_path / "flat.obj"
    flat.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\nf 1 2 3\nf 2 4 3\n")
    files["flat"] = (flat, "flat")
    nan = tmp_path / "nan.obj"
    nan.write_text("v 0 0 0\nv 1 0 0\nv 0 nan 0\nv 0 0 1\nf 1 2 3\nf 1 2 4\nf 1 3 4\nf 2 3 4\n")
    files["nan"] = (nan, "NaN")
    for name, array, message in (
        ("2d", np.zeros((8, 8), np.float32), "not a 3D grid"),
        ("int", np.ones((4, 4, 4), np.int32), "not floats"),
        ("nonfinite", np.full((4, 4, 4), np.nan, np.float32), "NaN"),
        ("nosurface", np.ones((4, 4, 4), np.float32), "no surface"),
    ):
        path = tmp_path / f"{name}.npy"
        np.save(path, array)
        files[f"npy {name}"] = (path, message)
    pickled = tmp_path / "pickled.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    files["npy pickle"] = (pickled, "no pickled objects")
    junk = tmp_path / "junk.npy"
    junk.write_bytes(b"\x93NUMPY garbage")
    files["npy junk"] = (junk, "not")
    return files


def test_bad_inputs_raise_one_clear_error(tmp_path):
    for case, (path, message) in _bad_files(tmp_path).items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(InputError, match=message) as caught:
                io.load_sdf(path)
        assert str(path) in str(caught.value), case


@pytest.mark.parametrize("case", ["not a mesh", "no normals", "nan", "npy pickle"])
def test_bad_inputs_exit_2_from_the_cli(tmp_path, case):
    path, message = _bad_files(tmp_path)[case]
    run = tmp_path / "run"
    result = runner.invoke(app, ["fit", "--signal", "sdf", str(path), "-o", str(run), "--steps", "5"])
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in result.output
    assert not run.exists()


def test_mesh_command_refuses_bad_requests(tmp_path, small_bank):
    source = _write_mesh(tmp_path / "box.stl", trimesh.creation.box(extents=(1, 2, 3)))
    run = tmp_path / "run"
    assert runner.invoke(app, ["fit", str(source), "-o", str(run), "--steps", "20", "--params", "2000", "--quiet"]).exit_code == 0
    tiny = runner.invoke(app, ["mesh", str(run), "--resolution", "4", "-o", str(tmp_path / "a.ply")])
    assert tiny.exit_code == 2 and "from 8 to" in tiny.output and not (tmp_path / "a.ply").exists()
    far = runner.invoke(app, ["mesh", str(run), "--level", "100", "-o", str(tmp_path / "b.ply")])
    assert far.exit_code == 2 and "does not cross level" in far.output and not (tmp_path / "b.ply").exists()
    wrong = runner.invoke(app, ["mesh", str(tmp_path), "-o", str(tmp_path / "c.ply")])
    assert wrong.exit_code == 2 and "not an inrkit run directory" in wrong.output
    image_run = tmp_path / "image"
    assert runner.invoke(app, ["fit", str(DATASETS / "camera-128.png"), "-o", str(image_run), "--steps", "2",
                               "--params", "2000", "--quiet"]).exit_code == 0
    image = runner.invoke(app, ["mesh", str(image_run), "-o", str(tmp_path / "d.ply")])
    assert image.exit_code == 2 and "not an SDF" in image.output


def test_bundled_scan_is_a_real_open_mesh():
    with pytest.warns(InrkitWarning, match="not watertight"):
        mesh = io.read_shape(DATASETS / "bunny-scan.ply")
    assert len(mesh.faces) > 90_000


@pytest.mark.parametrize("suffix", [".ply", ".obj", ".stl", ".off", ".glb"])
def test_mesh_formats_load_with_their_geometry(tmp_path, suffix):
    box = trimesh.creation.box(extents=(1.0, 2.0, 3.0))
    box.apply_translation([1.0, 2.0, 3.0])
    path = tmp_path / f"box{suffix}"
    box.export(path)
    loaded = io.read_shape(path)
    assert isinstance(loaded, trimesh.Trimesh) and loaded.is_watertight
    assert np.allclose(loaded.bounds, box.bounds, atol=1e-6)
    assert loaded.volume == pytest.approx(6.0, rel=1e-6)


def test_glb_export_round_trips(tmp_path, small_bank):
    source = _write_mesh(tmp_path / "ball.obj", trimesh.creation.icosphere(subdivisions=3, radius=1.0))
    run = tmp_path / "run"
    assert runner.invoke(app, ["fit", str(source), "-o", str(run), "--steps", "40", "--params", "2000",
                               "--quiet"]).exit_code == 0
    out = tmp_path / "ball.glb"
    result = runner.invoke(app, ["export", str(run), "--resolution", "32", "-o", str(out)])
    assert result.exit_code == 0, result.output
    loaded = io.read_shape(out)
    assert len(loaded.faces) > 100 and np.all(np.abs(loaded.bounds) < 1.3)


def test_eikonal_loss_lowers_the_gradient_residual(tmp_path, small_bank):
    source = _write_mesh(tmp_path / "ball.ply", trimesh.creation.icosphere(subdivisions=3, radius=1.0))
    residuals = {}
    for loss in ("sdf", "sdf-eikonal"):
        run = tmp_path / loss
        result = runner.invoke(app, ["fit", str(source), "-o", str(run), "--steps", "80", "--params", "2500",
                                     "--loss", loss, "--quiet"])
        assert result.exit_code == 0, result.output
        from inrkit.checkpoint import load_run

        model = load_run(run).model
        coords = (torch.rand(3000, 3, generator=torch.Generator().manual_seed(5)) * 2 - 1).requires_grad_(True)
        (gradient,) = torch.autograd.grad(model(coords).sum(), coords)
        residuals[loss] = float(torch.mean(torch.abs(gradient.norm(dim=1) - 1)))
    assert residuals["sdf-eikonal"] < residuals["sdf"]


def test_damaged_faces_and_absurd_mesh_requests(tmp_path, small_bank):
    damaged = tmp_path / "damaged.ply"
    damaged.write_text("ply\nformat ascii 1.0\nelement vertex 4\nproperty float x\nproperty float y\nproperty float z\n"
                       "element face 2\nproperty list uchar int vertex_indices\nend_header\n"
                       "0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 1 2\n3 0 1 9\n")
    with pytest.raises(InputError, match="vertex 9"):
        io.load_sdf(damaged)
    source = _write_mesh(tmp_path / "ball.obj", trimesh.creation.icosphere(subdivisions=2, radius=1.0))
    run = tmp_path / "run"
    assert runner.invoke(app, ["fit", str(source), "-o", str(run), "--steps", "5", "--params", "2000",
                               "--quiet"]).exit_code == 0
    huge = runner.invoke(app, ["mesh", str(run), "--resolution", "2048", "-o", str(tmp_path / "a.ply")])
    assert huge.exit_code == 2 and "from 8 to 1024" in huge.output
    grid = runner.invoke(app, ["mesh", str(run), "-o", str(tmp_path / "a.npy")])
    assert grid.exit_code == 2 and "must end in .ply" in grid.output and not (tmp_path / "a.npy").exists()


def test_volume_slope_is_measured_for_the_eikonal_loss(tmp_path):
    source = tmp_path / "vol.npy"
    n = 33
    np.save(source, (_grid(lambda p: sphere_sdf(p, 0.5), n=n) * (n - 1) / 2).astype(np.float32))  # voxel units
    signal = io.load_sdf(source)
    assert signal.metadata["gradient_norm"] == pytest.approx((n - 1) / 2, rel=0.02)


def test_an_image_run_relabelled_as_sdf_exports_nothing_and_says_why(tmp_path):
    from PIL import Image

    from inrkit.plugin import InputError, export_run
    from inrkit.testing import fit_run

    image = tmp_path / "img.png"
    Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16)).save(image)
    fit_run(image, tmp_path / "run", steps=3, params=300)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    config["signal"].update(signal_type="sdf", kind="sdf")
    (tmp_path / "run" / "config.json").write_text(json.dumps(config))
    for name in ("x.npy", "x.ply"):
        with pytest.raises(InputError, match="dims is 2, it must be 3 for an SDF run"):
            export_run(tmp_path / "run", tmp_path / name, resolution=[8])
        assert not (tmp_path / name).exists()


def test_the_sample_bank_follows_seed(tmp_path, monkeypatch):
    for kind in list(io.BANK):
        monkeypatch.setitem(io.BANK, kind, 400)  # a small bank: this checks the wiring, not the sampling
    import inrkit.plugins.sdf as sdf_plugin

    monkeypatch.setattr(sdf_plugin, "REPORT_RESOLUTION", 16)
    seeds = []
    real = io.sample_bank
    monkeypatch.setattr(io, "sample_bank", lambda mesh, seed=io.BANK_SEED: seeds.append(seed) or real(mesh, seed))
    sphere = tmp_path / "ball.obj"
    trimesh.creation.icosphere(subdivisions=2, radius=0.5).export(sphere)
    run = tmp_path / "run"
    result = runner.invoke(app, ["fit", str(sphere), "-o", str(run), "--steps", "2", "--params", "800", "--seed", "3", "-q"])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "config.json").read_text())["signal"]["load_options"] == {"seed": 3} and seeds == [3]
    first, other = io.load_sdf(sphere, seed=3), io.load_sdf(sphere, seed=0)
    assert not torch.equal(first.points, other.points) and torch.equal(first.points, io.load_sdf(sphere, seed=3).points)
    explicit = runner.invoke(app, ["fit", str(sphere), "-o", str(tmp_path / "r2"), "--steps", "2", "--params", "800",
                                   "--seed", "3", "--option", "seed=5", "-q"])
    assert explicit.exit_code == 0 and seeds[-1] == 5
