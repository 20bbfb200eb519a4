import json

import pytest
import torch

from inrkit.checkpoint import atomic_output, load_run, save_run, staged_run_dir
from inrkit.config import ModelConfig
from inrkit.errors import RunDirError
from inrkit.model import build_model


def model_config(**kw):
    return ModelConfig(dims=2, out_channels=1, input_frequencies=8, width=8, bandlimit=(6, 6), low_bandlimit=(2, 2), **kw)


def test_atomic_output_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as temporary:
            temporary.write_bytes(b"half")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_staged_run_dir_is_all_or_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with staged_run_dir(tmp_path / "run") as staging:
            (staging / "model.safetensors").write_bytes(b"x")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with staged_run_dir(tmp_path / "run") as staging:
        (staging / "a").write_text("1")
    assert (tmp_path / "run" / "a").read_text() == "1"
    with pytest.raises(RunDirError, match="already exists"):
        with staged_run_dir(tmp_path / "run"):
            pass
    with staged_run_dir(tmp_path / "run", overwrite=True) as staging:
        (staging / "b").write_text("2")
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["b"]
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


@pytest.mark.parametrize("kw", [{}, {"bound_mode": "tanh"}, {"architecture": "siren", "bandlimit": (), "low_bandlimit": ()}])
def test_save_and_load_round_trip(tmp_path, kw):
    cfg = model_config(**kw) if "architecture" not in kw else ModelConfig(dims=2, out_channels=1, input_frequencies=8, width=8, **kw)
    model = build_model(cfg)
    save_run(tmp_path, model, {"model": cfg.to_dict(), "signal": {}}, {"final": {}})
    run = load_run(tmp_path)
    x = torch.rand(20, 2) * 2 - 1
    assert torch.equal(run.model(x), model.eval()(x))
    assert not any(p.suffix == ".pickle" for p in tmp_path.iterdir())


def test_load_run_errors(tmp_path):
    with pytest.raises(RunDirError, match="does not exist"):
        load_run(tmp_path / "nope")
    with pytest.raises(RunDirError, match="not an inrkit run directory"):
        load_run(tmp_path)
    cfg = model_config()
    save_run(tmp_path, build_model(cfg), {"model": cfg.to_dict()}, {})
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(RunDirError, match="safetensors"):
        load_run(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(RunDirError, match="not valid JSON"):
        load_run(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(RunDirError, match="not an inrkit run config"):
        load_run(tmp_path)


def test_shape_mismatch_is_reported(tmp_path):
    cfg = model_config()
    save_run(tmp_path, build_model(cfg), {"model": cfg.to_dict()}, {})
    data = json.loads((tmp_path / "config.json").read_text())
    data["model"]["width"] = 9
    (tmp_path / "config.json").write_text(json.dumps(data))
    with pytest.raises(RunDirError, match="does not match config.json"):
        load_run(tmp_path)
