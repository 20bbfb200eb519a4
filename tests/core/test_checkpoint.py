import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from inrkit.atomic import atomic_output, deferred_interrupt, recover_leftovers
from inrkit.checkpoint import (
    check_new_run_dir,
    interrupted_path,
    is_run_dir,
    load_run,
    save_run,
    staged_run_dir,
)
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
        (staging / "config.json").write_text(json.dumps({"format": "inrkit-run"}))
    assert is_run_dir(tmp_path / "run")
    with pytest.raises(RunDirError, match="already exists"):
        with staged_run_dir(tmp_path / "run"):
            pass
    with staged_run_dir(tmp_path / "run", overwrite=True) as staging:
        (staging / "b").write_text("2")
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["b"]
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_overwrite_never_deletes_a_folder_that_is_not_a_run(tmp_path):
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "thesis.txt").write_text("three years of work")
    for marker in (None, "{not json", json.dumps({"format": "something-else"})):
        if marker is not None:
            (folder / "config.json").write_text(marker)
        with pytest.raises(RunDirError, match="only inrkit run directories"):
            with staged_run_dir(folder, overwrite=True) as staging:
                (staging / "b").write_text("2")
        assert (folder / "thesis.txt").read_text() == "three years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis"]


def dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_leftovers_of_a_dead_writer_are_cleaned_or_restored(tmp_path):
    pid = dead_pid()
    run = tmp_path / "run"
    stale = tmp_path / f".run.{pid}-abcd1234.partial"
    (stale / "half").mkdir(parents=True)
    retired = tmp_path / f".run.{pid}-efgh5678.old"
    (retired / "run").mkdir(parents=True)
    (retired / "run" / "config.json").write_text(json.dumps({"format": "inrkit-run"}))
    temporary = tmp_path / f".run.{pid}-xyz.tmp.png"
    temporary.write_bytes(b"half a png")
    live = tmp_path / f".run.{os.getpid()}-live0000.partial"
    live.mkdir()
    done = recover_leftovers(run)
    # The previous run, retired when the writer was killed between its two renames, is back.
    assert is_run_dir(run) and any("restored" in line for line in done)
    assert not stale.exists() and not retired.exists()
    assert live.exists(), "a live writer's staging folder must be left alone"
    with atomic_output(run / "x.txt") as out:
        out.write_text("x")
    atomic_output_leftover = tmp_path / f".x.txt.{pid}-q.tmp.txt"
    atomic_output_leftover.write_text("old")
    (run / atomic_output_leftover.name).write_text("old")
    with atomic_output(run / "x.txt") as out:
        out.write_text("y")
    assert not (run / atomic_output_leftover.name).exists()


def test_a_writer_killed_with_sigkill_leaves_nothing_the_next_write_keeps(tmp_path):
    run = tmp_path / "run"
    code = (
        "import sys, time; from pathlib import Path; from inrkit.checkpoint import staged_run_dir\n"
        f"with staged_run_dir(Path({str(run)!r})) as staging:\n"
        "    (staging / 'model.safetensors').write_bytes(b'x' * 1000)\n"
        "    print('writing', flush=True); time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "writing"
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert [p.name.endswith(".partial") for p in tmp_path.iterdir()] == [True]
    check_new_run_dir(run, overwrite=False)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_path_is_beside_and_free(tmp_path):
    (tmp_path / "run").mkdir()
    assert interrupted_path(tmp_path / "run") == tmp_path / "run.interrupted-1"
    (tmp_path / "run.interrupted-1").mkdir()
    assert interrupted_path(tmp_path / "run") == tmp_path / "run.interrupted-2"


def test_deferred_interrupt_finishes_the_block_then_reports():
    finished = False
    with deferred_interrupt() as held:
        os.kill(os.getpid(), signal.SIGINT)
        finished = True
    assert finished and held.received
    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupt():
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)


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
