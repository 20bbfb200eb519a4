"""Progress of long phases: the ``inrkit_phase_progress`` hook, its rate limit and the CLI's display."""

import io as text_io

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image
from typer.testing import CliRunner

import inrkit.progress as progress
from inrkit.cli.main import app
from inrkit.cli.progress import ProgressBar
from inrkit.host import get_host
from inrkit.plugin import ExportRequest, PhaseProgress, StepEnded, hookimpl, report_progress
from inrkit.plugins.sdf import export_mesh, geometry, io


class FakeClock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class Recorder:
    def __init__(self):
        self.events: list[PhaseProgress] = []

    @hookimpl
    def inrkit_phase_progress(self, progress: PhaseProgress) -> None:
        self.events.append(progress)

    def of(self, phase: str) -> list[PhaseProgress]:
        return [e for e in self.events if e.phase == phase]


@pytest.fixture
def recorder(monkeypatch):
    """An observer on the process's host, with the rate limit off (every call reaches it)."""
    monkeypatch.setattr(progress, "INTERVAL", 0.0)
    monkeypatch.setattr(progress, "_last_phase", None)
    host = get_host()
    observer = Recorder()
    host.pm.register(observer, name="test-progress-recorder")
    yield observer
    host.pm.unregister(observer)


def _increasing(events: list[PhaseProgress]) -> None:
    assert len(events) >= 2
    done = [e.done for e in events]
    assert done == sorted(done) and done[0] < done[-1]
    assert events[-1].total is not None and events[-1].done == events[-1].total


def _sphere(coords: torch.Tensor) -> torch.Tensor:
    return (coords.norm(dim=1, keepdim=True) - 0.5).float()


SPHERE_METADATA = {"domain_extent": [1.0, 1.0, 1.0], "distance_scale": 1.0,
                   "transform": {"center": [0.0, 0.0, 0.0], "scale": 1.0}}


def test_mesh_extraction_reports_growing_progress(recorder, monkeypatch):
    monkeypatch.setattr(geometry, "SLAB_POINTS", 300)  # several slabs at 16^3
    from inrkit.plugins.sdf import extract_mesh

    mesh = extract_mesh(_sphere, SPHERE_METADATA, (16, 16, 16))
    assert len(mesh.faces) > 0
    _increasing(recorder.of("evaluating the field"))
    assert recorder.of("evaluating the field")[0].unit == "planes"
    _increasing(recorder.of("marching cubes"))


def test_sample_bank_reports_growing_progress(recorder, monkeypatch):
    monkeypatch.setattr(io, "BANK", {"surface": 300, "near_fine": 400, "near_coarse": 400, "uniform": 300})
    bank = io.sample_bank(trimesh.creation.icosphere(subdivisions=2, radius=0.5))
    events = recorder.of("SDF sample bank")
    _increasing(events)
    assert len(events) == 4 and events[-1].total == 1100 and events[-1].unit == "points"
    assert len(bank["distances"]) == 1400


def test_sample_bank_distances_do_not_depend_on_the_chunks(monkeypatch):
    mesh = trimesh.creation.icosphere(subdivisions=2, radius=0.5)
    monkeypatch.setattr(io, "BANK", {"surface": 100, "near_fine": 200, "near_coarse": 200, "uniform": 100})
    bank = io.sample_bank(mesh)
    whole = geometry.signed_distance(bank["points"][100:], mesh.vertices, mesh.faces)
    assert np.array_equal(bank["distances"][100:], whole)


def test_an_export_reports_growing_progress(recorder, monkeypatch, tmp_path):
    monkeypatch.setattr(geometry, "SLAB_POINTS", 1000)
    request = ExportRequest(evaluate=_sphere, geometry={"dims": 3}, metadata=SPHERE_METADATA, path=tmp_path / "sphere.ply",
                            options={"resolution": [24]})
    facts = export_mesh(request)
    assert facts["faces"] > 0 and (tmp_path / "sphere.ply").exists()
    events = recorder.of("evaluating the field")
    _increasing(events)
    assert events[-1].total == 24 and "24x24x24" in events[-1].detail


def test_evaluation_with_progress_is_bit_for_bit_the_plain_one(recorder, monkeypatch):
    import inrkit.train as train
    from inrkit.config import ModelConfig
    from inrkit.model import build_model

    monkeypatch.setattr(train, "rows_for", lambda model, most=1 << 16: 1000)  # small chunks, for both evaluations
    evaluate, rows_for = train.evaluate, train.evaluation_rows
    model = build_model(ModelConfig(dims=2, out_channels=1, input_frequencies=24, width=16, bandlimit=(12, 12),
                                    low_bandlimit=(4, 4)))
    coords = torch.rand(rows_for(model) * 8 * 2 + 123, 2) * 2 - 1
    assert torch.equal(progress.evaluate_reporting(model, coords, "evaluating"), evaluate(model, coords))
    _increasing(recorder.of("evaluating"))


def test_rate_limit_lets_about_ten_a_second_through(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(progress, "clock", clock)
    monkeypatch.setattr(progress, "_last_phase", None)
    host = get_host()
    observer = Recorder()
    host.pm.register(observer, name="test-progress-limit")
    try:
        for i in range(1000):  # 1000 calls over 2 s
            report_progress("busy", i, 1000)
            clock.now += 0.002
        report_progress("busy", 1000, 1000)
    finally:
        host.pm.unregister(observer)
    events = observer.of("busy")
    assert 15 <= len(events) <= 22
    assert events[0].done == 0 and events[-1].done == 1000  # the start and the end always reach observers


def test_no_host_means_no_work(monkeypatch):
    import inrkit.host as host_module

    monkeypatch.setattr(host_module, "_HOST", None)
    monkeypatch.setattr(progress, "_last_phase", None)
    report_progress("nobody listens", 1, 2)
    assert host_module._HOST is None  # it never loads a host


def _step(step: int, progress_fraction: float) -> StepEnded:
    return StepEnded(step=step, seconds=step * 0.01, loss=1e-3, psnr=31.5, lr=1e-3, progress=progress_fraction,
                     model=torch.nn.Linear(1, 1))


def test_plain_lines_come_at_most_every_interval():
    clock, stream = FakeClock(), text_io.StringIO()
    bar = ProgressBar(stream=stream, terminal=False, plain_interval=5.0, clock=clock)
    for step in range(200):  # 20 s of training, one step per 0.1 s
        clock.now += 0.1
        bar.inrkit_step_end(_step(step, step / 200))
    for done in range(30):  # then a 15 s phase
        clock.now += 0.5
        bar.inrkit_phase_progress(PhaseProgress("mesh extraction", done, 30, "planes"))
    lines = stream.getvalue().splitlines()
    assert 6 <= len(lines) <= 7 and "\r" not in stream.getvalue() and "\x1b" not in stream.getvalue()
    assert any("PSNR 31.50 dB" in line and "ETA" in line for line in lines)
    assert any(line.startswith("[") and "mesh extraction" in line and "/30 planes" in line and "ETA" in line
               for line in lines)


def test_terminal_line_is_redrawn_and_cleared_when_a_phase_ends():
    clock, stream = FakeClock(), text_io.StringIO()
    bar = ProgressBar(stream=stream, terminal=True, clock=clock)
    for done in range(5):
        clock.now += 1.0
        bar.inrkit_phase_progress(PhaseProgress("SDF sample bank", done * 10, 40, "points"))
    text = stream.getvalue()
    assert text.count("\r") == 5 and " 75%" in text and "SDF sample bank" in text and "ETA 00:01" in text
    assert text.endswith("\r\x1b[K")  # the finished phase leaves nothing behind


def test_unknown_total_shows_elapsed_time_without_a_bar():
    bar = ProgressBar(stream=text_io.StringIO())
    line = bar.phase_line(PhaseProgress("marching cubes", 3, None, "steps"), elapsed=65)
    assert line == "marching cubes  3 steps  01:05 elapsed"


def test_quiet_shows_nothing():
    clock, stream = FakeClock(), text_io.StringIO()
    bar = ProgressBar(stream=stream, enabled=False, terminal=False, plain_interval=0.0, clock=clock)
    for step in range(20):
        clock.now += 10
        bar.inrkit_step_end(_step(step, step / 20))
        bar.inrkit_phase_progress(PhaseProgress("writing the run", step, 20))
    bar.close()
    assert stream.getvalue() == ""


def _image(tmp_path):
    y, x = np.mgrid[0:16, 0:16]
    path = tmp_path / "tiny.png"
    Image.fromarray(np.stack([x * 16, y * 16, (x + y) * 8], -1).astype(np.uint8)).save(path)
    return path


@pytest.mark.parametrize("quiet", [True, False])
def test_cli_progress_on_a_non_terminal(tmp_path, monkeypatch, quiet):
    import inrkit.cli.progress as cli_progress

    monkeypatch.setattr(cli_progress, "PLAIN_INTERVAL", 0.0)  # a line for every event that gets through
    monkeypatch.setattr(progress, "_last_phase", None)
    source = _image(tmp_path)
    args = ["fit", str(source), "-o", str(tmp_path / "run"), "--steps", "5", "--params", "300", "--device", "cpu"]
    result = CliRunner().invoke(app, args + (["--quiet"] if quiet else []))
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("[")]
    if quiet:
        assert result.output == ""
    else:
        assert any("step" in line and "PSNR" in line for line in lines), result.output
        assert any("writing the run" in line for line in lines), result.output
