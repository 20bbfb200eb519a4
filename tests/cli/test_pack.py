"""``inrkit pack``, ``inrkit export x.inr``, ``inrkit mesh x.inr`` and ``inrkit fit --pack``."""

import json
import struct

import numpy as np
import pytest
import torch
from inrkit.checkpoint import load_run
from inrkit.cli.main import app, load_plugin_commands
from inrkit.packing import MAGIC, quantised_state, read_packed
from inrkit.packjob import parse_size
from inrkit.signal import grid_coordinates
from inrkit.train import evaluate
from PIL import Image
from typer.testing import CliRunner

runner = CliRunner()
FAST = ["--steps", "60", "--params", "900", "--quiet"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_error_line(result, *words):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    root = tmp_path_factory.mktemp("pack")
    y, x = np.mgrid[0:20, 0:24]
    source = root / "small.png"
    Image.fromarray(((np.sin(x / 3.0) + np.cos(y / 4.0)) * 60 + 128).astype(np.uint8)).save(source)
    run = root / "run"
    result = invoke("fit", source, "-o", run, *FAST, "--pack", "--bits", "8")
    assert result.exit_code == 0, result.output
    return root, source, run


def test_fit_pack_writes_the_file_and_its_numbers(packed):
    _, _, run = packed
    metrics = json.loads((run / "metrics.json").read_text())["packed"]
    assert (run / "model.inr").stat().st_size == metrics["bytes"]
    assert metrics["bits"]["hidden.0.weight"] == 8 and metrics["file"] == "model.inr"
    assert metrics["bytes"] < metrics["float32_model_bytes"] / 2
    # The stated PSNR is the packed model's against the source, recomputed here independently.
    reloaded = load_run(run / "model.inr")
    values = evaluate(reloaded.model, grid_coordinates([20, 24], reloaded.signal["extent"]))
    pixels = np.asarray(Image.open(packed[1]), dtype=np.float64).reshape(-1) / 255 * 2 - 1
    mse = float(np.mean((values.double().numpy().reshape(-1) - pixels) ** 2))
    assert abs(10 * np.log10(4 / mse) - metrics["psnr"]) < 1e-3
    assert abs(metrics["psnr_float"] - json.loads((run / "metrics.json").read_text())["final"]["psnr"]) < 1e-3


def test_export_of_a_packed_file_is_the_dequantised_model(packed, tmp_path):
    _, _, run = packed
    inr = tmp_path / "x.inr"
    result = invoke("pack", run, "-o", inr, "--bits", "5", "--qat-steps", "0")
    assert result.exit_code == 0, result.output
    assert "bytes" in result.output and "PSNR" in result.output
    result = invoke("export", inr, "-o", tmp_path / "out.png")
    assert result.exit_code == 0, result.output
    float_run = load_run(run)
    plan = {entry["name"]: entry for entry in read_packed(inr)[0]["tensors"]}
    assert plan["hidden.0.weight"]["bits"] == 5
    from inrkit.packing import default_plan

    state = quantised_state(float_run.model.state_dict(), default_plan(float_run.model.state_dict(), 5))
    float_run.model.load_state_dict(state)
    expected = evaluate(float_run.model, grid_coordinates([20, 24], float_run.signal["extent"]))
    expected = np.clip(np.rint((expected.numpy().reshape(20, 24) + 1) / 2 * 255), 0, 255)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.png"), dtype=np.float64), expected)


def test_spectrum_of_a_packed_file_needs_the_signal_and_writes_beside_it(packed, tmp_path):
    _, source, run = packed
    inr = tmp_path / "x.inr"
    inr.write_bytes((run / "model.inr").read_bytes())
    one_error_line(invoke("spectrum", inr), "packed model", "--input FILE")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.inr"]  # nothing half-written
    result = invoke("spectrum", inr, "--input", source)
    assert result.exit_code == 0, result.output
    numbers = json.loads((tmp_path / "x.spectrum.json").read_text())
    assert (tmp_path / "x.spectrum.png").stat().st_size > 0 and "suggested_bandlimit" in numbers


def psnr_of(inr, source):
    run = load_run(inr)
    values = evaluate(run.model, grid_coordinates([20, 24], run.signal["extent"])).double().numpy().reshape(-1)
    pixels = np.asarray(Image.open(source), dtype=np.float64).reshape(-1) / 255 * 2 - 1
    return 10 * np.log10(4 / float(np.mean((values - pixels) ** 2)))


def test_default_pack_chooses_bits_within_the_tolerance(packed, tmp_path):
    _, source, run = packed
    result = invoke("pack", run, "-o", tmp_path / "d.inr", "--qat-steps", "20")
    assert result.exit_code == 0, result.output
    assert "quantisation-aware finish (20 steps)" in result.output
    float_psnr = json.loads((run / "metrics.json").read_text())["final"]["psnr"]
    default = tmp_path / "d.inr"
    assert float_psnr - 0.3 - 1e-6 <= psnr_of(default, source) < float_psnr + 0.5
    # the effective depth per tensor, as reported (a half-bit depth is stored at the whole depth above it)
    listed = result.output.split("bits: ", 1)[1].split(";", 1)[0]
    bits = {name: float(depth) for name, depth in (item.rsplit(" ", 1) for item in listed.split(", "))}
    stored = {entry["name"]: entry["bits"] for entry in read_packed(default)[0]["tensors"]}
    assert all(stored[name] - 0.5 <= depth <= stored[name] for name, depth in bits.items())
    assert len({bits[name] for name in ("input.phases", "hidden.0.weight", "head.weight")}) > 1  # per tensor
    sized = invoke("pack", run, "-o", tmp_path / "s.inr", "--target-size", "550")
    assert sized.exit_code == 0, sized.output
    assert (tmp_path / "s.inr").stat().st_size <= 550 < default.stat().st_size
    assert psnr_of(tmp_path / "s.inr", source) < float_psnr - 0.3
    wanted = float_psnr - 3
    reached = invoke("pack", run, "-o", tmp_path / "t.inr", "--target-psnr", f"{wanted}", "--qat-steps", "0")
    assert reached.exit_code == 0, reached.output
    assert psnr_of(tmp_path / "t.inr", source) >= wanted
    assert (tmp_path / "s.inr").stat().st_size < (tmp_path / "t.inr").stat().st_size < default.stat().st_size


def test_fit_target_psnr_pack_searches_size_and_bits(packed, tmp_path):
    _, source, _ = packed
    run = tmp_path / "t"
    result = invoke("fit", source, "-o", run, "--steps", "50", "--params", "900", "--quiet", "--target-psnr", "22",
                    "--pack")
    assert result.exit_code == 0, result.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["packed"]["goal"] == {"target_psnr": 22.0} and metrics["prune_path"]
    assert psnr_of(run / "model.inr", source) >= 22.0 and (run / "pack_path.png").is_file()
    assert len(metrics["packed"]["search_path"]) >= 2


def test_sizes_parse():
    assert [parse_size(t) for t in ("2400", "2.4KB", "4KiB", "1MB", "12b")] == [2400, 2400, 4096, 10**6, 12]


def damaged_files(root, run):
    good = (run / "model.inr").read_bytes()
    newer = bytearray(good)
    struct.pack_into("<H", newer, len(MAGIC), 9)
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 1
    files = {"truncated": good[: len(good) - 20], "checksum": bytes(flipped), "version 9": bytes(newer),
             "not an .inr file": b"\x89PNG\r\n\x1a\n" + bytes(50)}
    paths = {}
    for word, data in files.items():
        path = root / f"{word.split()[0]}.inr"
        path.write_bytes(data)
        paths[word] = path
    return paths


def test_bad_packed_files_get_one_line_from_export_and_mesh(packed, tmp_path):
    _, _, run = packed
    load_plugin_commands()
    for word, path in damaged_files(tmp_path, run).items():
        one_error_line(invoke("export", path, "-o", tmp_path / "o.png"), word)
        one_error_line(invoke("mesh", path, "-o", tmp_path / "o.ply"), word)
        assert not (tmp_path / "o.png").exists()
    one_error_line(invoke("mesh", run / "model.inr", "-o", tmp_path / "o.ply"), "not an SDF")


def test_bad_options_get_one_line(packed, tmp_path):
    _, source, run = packed
    one_error_line(invoke("pack", run, "-o", tmp_path / "x.inr", "--bits", "1"), "2 to 16")
    one_error_line(invoke("pack", run, "-o", tmp_path / "x.inr", "--target-size", "lots"), "2.4KB")
    one_error_line(invoke("pack", run, "-o", tmp_path / "x.inr", "--target-size", "10"), "smallest file")
    one_error_line(invoke("pack", run, "-o", tmp_path / "x.inr", "--target-psnr", "90"), "above")
    one_error_line(invoke("pack", run, "-o", tmp_path / "x.png"), ".inr")
    one_error_line(invoke("pack", run, "-o", source), ".inr")
    one_error_line(invoke("pack", run, "-o", tmp_path / "x.inr", "--bits", "8", "--target-size", "2KB"), "at most one")
    one_error_line(invoke("pack", tmp_path / "nothing", "-o", tmp_path / "x.inr"), "does not exist")
    one_error_line(invoke("fit", source, "-o", tmp_path / "r", *FAST, "--bits", "8"), "--pack")
    one_error_line(invoke("fit", source, "-o", tmp_path / "r", *FAST, "--pack", "--bits", "20"), "2 to 16")
    assert not (tmp_path / "r").exists() and not (tmp_path / "x.inr").exists()
    assert torch.is_tensor(load_run(run / "model.inr").model.input.phases)


def _judged(packed):
    """The packed fixture's run, a :class:`~inrkit.packjob.Judge` of it against its pixels, and its state."""
    from inrkit.packjob import Judge

    _, source, run_dir = packed
    run = load_run(run_dir)
    coords = grid_coordinates([20, 24], run.signal["extent"])
    pixels = torch.from_numpy(np.asarray(Image.open(source), dtype=np.float32).reshape(-1, 1) / 255 * 2 - 1)
    state = {name: tensor.detach().clone() for name, tensor in run.model.state_dict().items()}
    return run, Judge(run.model, coords, pixels, 2.0, run.config), state


def test_finished_weights_over_the_budget_are_replanned_not_thrown_away(packed):
    from inrkit.packing import default_plan, pack
    from inrkit.packjob import SEARCH_CODER, _replan

    run, judge, state = _judged(packed)
    budget = len(pack(state, run.config, default_plan(state, 12), SEARCH_CODER)) - 40  # a 12-bit plan is over it
    before = (state, default_plan(state, 3))
    path: list = []
    kept_state, plan, facts = _replan(judge, state, "tensor", budget, before, {"psnr_before": 0.0}, path)
    assert facts["kept"] and facts["replanned"] and path
    assert len(pack(kept_state, run.config, plan, SEARCH_CODER)) <= budget
    assert facts["psnr_after"] == pytest.approx(judge.psnr(quantised_state(kept_state, plan)))
    # A replanned file no better than rounding alone is not kept: the rounding-only state and plan come back.
    _, plan, facts = _replan(judge, state, "tensor", budget, before, {"psnr_before": 1e9}, [])
    assert not facts["kept"] and plan is before[1]


def test_search_from_a_bit_past_the_first_depth_is_never_worse_and_still_meets_the_goal(packed):
    from inrkit.packjob import search_plan

    _, judge, state = _judged(packed)
    goal = judge.psnr(state) - 0.3
    plain = search_plan(judge, state, "tensor", min_psnr=goal, headroom=False)
    found = search_plan(judge, state, "tensor", min_psnr=goal)
    assert found.psnr >= goal and found.size <= plain.size
    assert found.psnr == pytest.approx(judge.psnr(quantised_state(state, found.plan)))
    first = min(depth for entry in plain.path if len(set(entry["bits"].values())) == 1 and entry["psnr"] >= goal
                for depth in entry["bits"].values())  # the first uniform depth that holds
    above = [entry for entry in found.path if set(entry["bits"].values()) == {first + 1}]
    assert above and not [entry for entry in plain.path if set(entry["bits"].values()) == {first + 1}]
    # A size: the walk up also starts from one bit below the largest uniform depth that fits.
    from inrkit.packing import default_plan

    budget = judge.measure(state, default_plan(state, first - 2))[0] + 8
    plain = search_plan(judge, state, "tensor", max_size=budget, headroom=False)
    found = search_plan(judge, state, "tensor", max_size=budget)
    assert found.size <= budget and found.psnr >= plain.psnr
    assert found.psnr == pytest.approx(judge.psnr(quantised_state(state, found.plan)))
    fits = max(depth for entry in plain.path if len(set(entry["bits"].values())) == 1 and entry["bytes"] <= budget
               for depth in entry["bits"].values())
    assert fits > 2 and [entry for entry in found.path if set(entry["bits"].values()) == {fits - 1}]


def test_best_plans_are_the_ones_no_smaller_plan_beats():
    from inrkit.cli.pack import best_plans

    rng = np.random.default_rng(3)
    plans = [{"bytes": int(b), "psnr": float(q)} for b, q in zip(rng.integers(100, 140, 60), rng.normal(30, 2, 60))]
    # brute force, from the definition: no plan of at most the same size has a PSNR at least as high and is
    # either smaller or better
    expected = {(p["bytes"], p["psnr"]) for p in plans
                if not any(o["bytes"] <= p["bytes"] and o["psnr"] >= p["psnr"]
                           and (o["bytes"], o["psnr"]) != (p["bytes"], p["psnr"]) for o in plans)}
    frontier = best_plans(plans)
    assert {(p["bytes"], p["psnr"]) for p in frontier} == expected
    assert [p["bytes"] for p in frontier] == sorted(p["bytes"] for p in frontier) and len(frontier) >= 3
