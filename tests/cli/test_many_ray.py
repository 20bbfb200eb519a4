"""``inrkit fit-many --executor ray`` on a real local Ray cluster (2 CPUs), with a worker killed in the middle.

Skipped when Ray is not installed (``pip install 'inrkit[ray]'``). The
cluster is started with ``ray start --head --block`` in its own process
group, on free ports and its own temporary folder, and stopped by
signalling that group: nothing else on the machine is touched.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("ray")

from inrkit.executors import groups_of, unpack
from inrkit.many import Entry, is_finished

PHOTO = Path(__file__).resolve().parents[2] / "datasets" / "camera-128.png"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def cluster():
    ray_bin = Path(sys.executable).with_name("ray")
    temp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's socket paths have a length limit
    port = _free_port()
    command = [str(ray_bin), "start", "--head", "--block", "--num-cpus", "2", "--port", str(port),
               "--include-dashboard", "false", "--disable-usage-stats", "--temp-dir", str(temp),
               "--node-ip-address", "127.0.0.1"]
    home = temp / "home"  # Ray keeps an authentication token in ~/.ray: the cluster and the driver share this one
    home.mkdir()
    env = {**os.environ, "HOME": str(home)}
    head = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env=env)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert head.poll() is None, "ray start --head failed"
            assert time.monotonic() < deadline, "the Ray head did not come up"
            time.sleep(0.2)
        yield address, head.pid, env  # the head leads its own session: the cluster's processes are in it
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=3)
        except subprocess.TimeoutExpired:
            pass
        for pid in _session(head.pid):  # every process of the cluster's session, by id
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        head.wait()
        shutil.rmtree(temp, ignore_errors=True)


def _session(session: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and os.getsid(int(entry.name)) == session:
                found.append(int(entry.name))
        except (OSError, ProcessLookupError):
            continue
    return found


def _task_workers(session: int) -> list[int]:
    """Processes of the cluster's session running a fit-many task (Ray names them after the task)."""
    found = []
    for pid in _session(session):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        if title.startswith("ray::fit_group"):
            found.append(pid)
    return found


def test_six_signals_on_a_cluster_with_a_worker_killed_complete_exactly_once(tmp_path, cluster):
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    source = Image.open(PHOTO)
    for k in range(6):
        source.crop((9 * k, 4 * k, 9 * k + 64, 4 * k + 64)).resize((16, 16)).save(inputs / f"p{k}.png")
    address, session, env = cluster
    env = {**env, "RAY_ADDRESS": address}
    driver = subprocess.Popen([sys.executable, "-m", "inrkit.cli", "fit-many", str(inputs), "-o", str(out),
                               "--executor", "ray", "--address", "auto", "--steps", "400", "--params", "700",
                               "--device", "cpu", "-q"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    deadline = time.monotonic() + 60
    while not (workers := _task_workers(session)):
        assert driver.poll() is None, driver.communicate()
        assert time.monotonic() < deadline, "no Ray task started"
        time.sleep(0.05)
    time.sleep(0.5)
    os.kill(workers[0], signal.SIGKILL)  # a worker lost in the middle of its group
    stdout, stderr = driver.communicate(timeout=120)
    assert driver.returncode == 0, stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"] == {"done": 6}
    rows = {Path(row["signal"]).name: row for row in summary["signals"]}
    assert sorted(rows) == [f"p{k}.png" for k in range(6)]
    # Every run was written once, by the driver ("before" would mean a second copy came back and was dropped).
    assert all(row["fitted"] == "now" and row["steps"] == 400 for row in rows.values())
    for k in range(6):
        assert is_finished(out / f"p{k}")
        config = json.loads((out / f"p{k}" / "config.json").read_text())
        assert config["signal"]["source"] == str((inputs / f"p{k}.png").resolve())  # the driver's path
    assert sorted(p.name for p in out.iterdir()) == sorted([f"p{k}" for k in range(6)] + ["summary.csv",
                                                                                           "summary.json"])
    assert "fitted 6 signals" not in stdout  # -q


def test_groups_and_unpacking_never_write_a_finished_run_twice(tmp_path):
    entries = [Entry(f"s{k}{ext}", Path(f"s{k}{ext}"), tmp_path / f"s{k}") for k in range(5) for ext in (".png",)]
    entries.append(Entry("a.wav", Path("a.wav"), tmp_path / "a"))
    groups = groups_of(entries, slots=2)
    assert sorted(e.signal for g in groups for e in g) == sorted(e.signal for e in entries)
    assert all(len({e.path.suffix for e in g}) == 1 for g in groups) and len(groups) >= 3
    files = {"config.json": json.dumps({"format": "inrkit-run"}).encode(), "model.safetensors": b"x",
             "metrics.json": json.dumps({"stop_reason": "steps"}).encode()}
    assert unpack(files, tmp_path / "run") is True
    assert unpack({**files, "model.safetensors": b"y"}, tmp_path / "run") is False
    assert (tmp_path / "run" / "model.safetensors").read_bytes() == b"x"
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
