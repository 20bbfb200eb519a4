"""``inrkit fit-many``: folders and manifests, the summary, bad input within a batch, resuming after Ctrl-C and kill."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from inrkit.cli.main import app
from inrkit.many import is_finished
from PIL import Image
from typer.testing import CliRunner

runner = CliRunner()
FAST = ["--steps", "20", "--params", "700", "--device", "cpu"]
PHOTO = Path(__file__).resolve().parents[2] / "datasets" / "camera-128.png"


def photos(folder: Path, count: int, size=(16, 16), prefix="p") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    source = Image.open(PHOTO)
    paths = []
    for k in range(count):
        path = folder / f"{prefix}{k}.png"
        source.crop((7 * k, 3 * k, 7 * k + 64, 3 * k + 64)).resize(size).save(path)
        paths.append(path)
    return paths


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def rows(out: Path) -> dict[str, dict]:
    data = json.loads((out / "summary.json").read_text())
    with open(out / "summary.csv", newline="") as handle:
        table = {row["signal"]: row for row in csv.DictReader(handle)}
    assert set(table) == {row["signal"] for row in data["signals"]}  # the two files agree
    for row in data["signals"]:
        assert table[row["signal"]]["status"] == row["status"]
    return {Path(row["signal"]).name: row for row in data["signals"]}


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*") if ".partial" in p.name or ".tmp" in p.name)


def test_a_folder_with_bad_input_fails_only_those_signals(tmp_path, monkeypatch):
    inputs = tmp_path / "in"
    photos(inputs, 3)
    photos(inputs / "small", 1, size=(12, 10), prefix="s")
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (inputs / "notes.txt").write_text("not a signal")  # not claimed by any signal type: not taken from a folder
    unknown = tmp_path / "table.xyz"
    unknown.write_text("1,2,3")
    locked = inputs / "locked"
    photos(locked, 1, prefix="l")
    listing = os.scandir

    def refuse(path="."):  # chmod 000 does not stop root, so the folder refuses to be listed here
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return listing(path)

    monkeypatch.setattr(os, "scandir", refuse)
    result = invoke("fit-many", inputs, unknown, "-o", tmp_path / "out", *FAST, "--workers", "1")
    monkeypatch.undo()
    assert result.exit_code == 1, result.output
    table = rows(tmp_path / "out")
    assert {name for name, row in table.items() if row["status"] == "done"} == {"p0.png", "p1.png", "p2.png", "s0.png"}
    failed = {name: row["error"] for name, row in table.items() if row["status"] == "failed"}
    assert set(failed) == {"broken.png", "table.xyz", "locked"}
    assert "not an image" in failed["broken.png"]
    assert "cannot tell the signal type" in failed["table.xyz"] and "--signal" in failed["table.xyz"]
    assert "cannot read folder" in failed["locked"] and "permission" in failed["locked"].lower()
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 3 and all("\n" not in e and "Traceback" not in result.output for e in errors)
    assert table["p0.png"]["batch"] == 3 and table["s0.png"]["batch"] == 1  # same shape batched; the odd one alone
    assert table["p0.png"]["parameters"] <= 700 and table["p0.png"]["steps"] == 20
    assert table["p0.png"]["metrics"]["psnr"] > 10
    for name in ("p0", "p1", "p2", "small/s0"):
        assert is_finished(tmp_path / "out" / name)
    assert leftovers(tmp_path / "out") == []


def test_a_manifest_sets_options_per_signal_and_bad_arguments_exit_2(tmp_path):
    paths = photos(tmp_path / "in", 2)
    manifest = tmp_path / "list.csv"
    manifest.write_text(f"path,name,params,steps\nin/{paths[0].name},first,600,10\n{paths[1]},second,,\n")
    result = invoke("fit-many", manifest, "-o", tmp_path / "out", *FAST, "-q")
    assert result.exit_code == 0, result.output
    table = rows(tmp_path / "out")
    assert table["p0.png"]["steps"] == 10 and table["p0.png"]["parameters"] <= 600
    assert table["p1.png"]["steps"] == 20 and table["p0.png"]["run_dir"].endswith("first")
    lines = tmp_path / "list.jsonl"
    lines.write_text(json.dumps({"path": str(paths[0]), "colour": "red"}) + "\n")
    bad = invoke("fit-many", lines, "-o", tmp_path / "out2", *FAST)
    assert bad.exit_code == 2 and "manifest column 'colour'" in bad.output
    assert not (tmp_path / "out2").exists()
    assert invoke("fit-many", paths[0], "-o", tmp_path / "o3", "--lr", "nan").exit_code == 2
    assert invoke("fit-many", tmp_path / "missing", "-o", tmp_path / "o4").exit_code == 2
    assert invoke("fit-many", paths[0], "-o", tmp_path / "o5", "--address", "auto").exit_code == 2
    closed = invoke("fit-many", paths[0], "-o", tmp_path / "o6", "--executor", "ray", "--address", "127.0.0.1:1")
    assert closed.exit_code == 2 and ("nothing answers" in closed.output or "needs Ray" in closed.output)


def _start(inputs: Path, out: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "inrkit.cli", "fit-many", str(inputs), "-o", str(out), "--device", "cpu",
               "--params", "700", "--steps", "500", *extra]
    # Ctrl-C as in a terminal even when the tests run where SIGINT is ignored (a background job of a script).
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # noqa: PLW1509


def _wait_for_finished(out: Path, names: list[str], count: int, process: subprocess.Popen, limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while sum(is_finished(out / n) for n in names) < count:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "fit-many made no progress"
        time.sleep(0.02)


def test_ctrl_c_and_kill_then_a_rerun_fits_only_what_is_unfinished(tmp_path):
    inputs, out = tmp_path / "in", tmp_path / "out"
    names = [p.stem for p in photos(inputs, 6, size=(32, 32))]  # more than 700 parameters can memorise
    written: dict[str, int] = {}

    def note_finished() -> None:
        for name in names:
            model = out / name / "model.safetensors"
            if is_finished(out / name) and name not in written:
                written[name] = model.stat().st_mtime_ns

    # Ctrl-C once the first group of two is written (one process, batched by two): it stops, says so, and keeps
    # what is finished.
    process = _start(inputs, out, "--workers", "1", "--group-size", "2")
    _wait_for_finished(out, names, 2, process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted:" in stderr and "run the same command again" in stderr and "Traceback" not in stderr
    note_finished()
    assert 2 <= len(written) < 6
    table = rows(out)
    assert sum(row["status"] == "done" for row in table.values()) == len(written)
    assert {row["status"] for row in table.values()} <= {"done", "interrupted"}
    # SIGKILL of the command while a pool of two workers fits the rest one by one: the workers die with it.
    process = _start(inputs, out, "--workers", "2", "--group-size", "1")
    _wait_for_finished(out, names, len(written) + 1, process)
    process.kill()
    process.communicate()
    time.sleep(0.5)
    note_finished()
    settled = dict(written)
    time.sleep(1.5)
    note_finished()
    assert written == settled and len(written) < 6  # no orphaned worker went on fitting
    # The rerun (default: a pool on the CPU) fits only the rest; finished runs are not touched; nothing
    # half-written remains.
    process = _start(inputs, out, "-q")
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    table = rows(out)
    assert all(row["status"] == "done" for row in table.values())
    before = {Path(name).stem for name, row in table.items() if row["fitted"] == "before"}
    assert before == set(written)
    for name, stamp in written.items():
        assert (out / name / "model.safetensors").stat().st_mtime_ns == stamp
    assert all(is_finished(out / n) for n in names)
    assert leftovers(out) == []
