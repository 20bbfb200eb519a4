"""Fuzzing every loader (issue #15): random and mutated files give success or an InrkitError, never a crash.

What is fuzzed
    ``load_image``, ``load_audio``, ``load_sdf`` (meshes as PLY, OBJ, STL, OFF
    and GLB; an oriented point cloud; ``.npy`` grids, so ``read_shape`` and
    ``load_volume`` too) and ``load_run`` (``config.json`` and
    ``model.safetensors`` of a run directory). The only allowed outcomes are
    success or an :class:`~inrkit.errors.InrkitError` with a one-line message
    (:class:`~inrkit.errors.InrkitWarning` warnings are fine). Anything else
    (ValueError, struct.error, a library's own exception...) is a loader bug:
    fix the loader, add the minimal file hypothesis found to the regression
    tests at the end of this module, never loosen the test.

How
    Seeds are valid files: the bundled ``camera-128.png`` and
    ``speech-16k.wav``, an icosphere written by trimesh, an oriented point
    cloud, a sphere SDF grid and the run directory of a tiny real fit (each
    seed is checked to load first). Hypothesis applies one to four mutations:
    truncation, byte flips, insertions, deletions, a repeated chunk, random
    bytes after a prefix, a binary header field set to a boundary value
    (PNG IHDR width/height/depth, WAV chunk sizes and format fields, the STL
    triangle count, GLB lengths, the safetensors header length, the .npy
    header length; PNG CRCs and the .npy header length are then repaired
    three times in four so that the change reaches the decoder), a number
    of the text replaced (PLY/OBJ/OFF counts and coordinates, the .npy
    shape, JSON) or a keyword swapped (PLY types and formats, .npy dtypes,
    JSON literals), or draws fully random bytes. The .npy header, the GLB's
    JSON chunk, the safetensors header and ``config.json`` are also mutated
    structurally: values at random JSON paths replaced by random JSON values
    (strings, huge ints, negative numbers, nested lists, null, NaN), nudged
    (+-1, x1000, negated) or dropped, then written back well-formed.

Bounds
    Time: a hypothesis ``deadline`` per example (a mutated file that makes a
    loader work for seconds is a bug). Memory: each load runs under a soft
    ``RLIMIT_AS`` of the process's current address space plus
    :data:`MEMORY_HEADROOM` (restored afterwards), so a loader that sizes an
    allocation from a forged header fails the test with a MemoryError
    instead of taking the machine. That was chosen over a forked subprocess
    per loader (a second torch import, and failures that hypothesis cannot
    shrink) and over peak-RSS checks (they see neither lazily mapped nor
    refused allocations, and the peak never comes down between examples).
    Where ``RLIMIT_AS`` is unavailable the time bound remains.

CI
    ``derandomize=True`` and no example database, so every run tries the same
    examples (about 5,000 in all; the whole module takes about 21 s on 2
    cores). For a deeper local search: ``INRKIT_FUZZ_SCALE=20`` multiplies
    the example counts and ``INRKIT_FUZZ_RANDOM=1`` draws fresh examples.
"""

from __future__ import annotations

import contextlib
import copy
import io as bytes_io
import json
import os
import re
import shutil
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import trimesh
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from inrkit.checkpoint import load_run
from inrkit.errors import InputError, InrkitError, InrkitWarning, RunDirError
from inrkit.plugins.audio.io import load_audio
from inrkit.plugins.image.io import load_image
from inrkit.plugins.sdf import io as sdf_io

try:
    import resource
except ImportError:  # not on Windows
    resource = None

DATASETS = Path(__file__).resolve().parents[1] / "datasets"
SCALE = float(os.environ.get("INRKIT_FUZZ_SCALE", "1"))
#: Address space a single load may add to the process.
MEMORY_HEADROOM = 2 << 30


# --- bounds -------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def memory_cap() -> Iterator[None]:
    """Run the block with a soft RLIMIT_AS of the current address space + MEMORY_HEADROOM."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        pages = None
    if resource is None or pages is None:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = pages * os.sysconf("SC_PAGE_SIZE") + MEMORY_HEADROOM
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def survives(load: Callable[[Path], object], path: Path) -> None:
    """``load(path)`` succeeds or raises a one-line InrkitError, within the memory cap."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InrkitWarning)
        try:
            with memory_cap():
                load(path)
        except InrkitError as error:
            assert "\n" not in str(error), f"{type(error).__name__} message is not one line: {error!r}"
        except MemoryError:
            raise AssertionError(f"loading {path.name} tried to allocate over {MEMORY_HEADROOM >> 20} MiB") from None


def fuzz(examples: int, deadline_ms: int = 2000) -> settings:
    return settings(
        max_examples=max(1, int(examples * SCALE)),
        deadline=timedelta(milliseconds=deadline_ms),
        derandomize=os.environ.get("INRKIT_FUZZ_RANDOM") != "1",
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
    )


# --- mutations ----------------------------------------------------------------------------------------------

NUMBER = re.compile(rb"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
BOUNDARY_INTS = (0, 1, 2, 3, 255, 256, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 2**63 - 1, 2**64 - 1)
NUMBER_TEXTS = (b"0", b"1", b"-1", b"3", b"65536", b"2147483648", b"4294967296", b"18446744073709551616",
                b"99999999999999999999999999", b"1e308", b"-1e308", b"nan", b"inf", b"0.5", b"")
JSON_TOKENS = (b"null", b"true", b"[]", b"{}", b'""', b"-1", b"0", b"1e400", b"NaN", b"[[[]]]")


@dataclass(frozen=True)
class Target:
    """A loader and how to mutate its seed file."""

    suffix: str
    load: Callable[[Path], object]
    examples: int
    #: Binary header fields: (offset, size in bytes, byte order).
    fields: tuple[tuple[int, int, str], ...] = ()
    #: Keywords swapped for one another.
    tokens: tuple[bytes, ...] = ()
    #: Bytes searched for numbers to replace (the text header of a binary file).
    text_limit: int | None = None
    #: Repairs checksums or lengths after a mutation (applied three times in four).
    fix: Callable[[bytes], bytes] | None = None


def _integer_bytes(value: int, size: int, order: str) -> bytes:
    return (value % (1 << (8 * size))).to_bytes(size, order)


@st.composite
def mutated(draw: st.DrawFn, seed: bytes, target: Target) -> bytes:
    """``seed`` after one to four random mutations, or fully random bytes."""
    if draw(st.integers(0, 19)) == 19:
        return draw(st.binary(max_size=2 * len(seed) if len(seed) < 4096 else 4096))
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, min(len(data), 96)) | st.integers(0, len(data)))
        op = draw(st.sampled_from(("truncate", "flip", "insert", "delete", "repeat", "tail", "field", "number", "token")))
        if op == "truncate":
            del data[max(at, 1) :]  # (an empty file has its own message, found at once)
        elif op == "flip" and at < len(data):
            data[at] ^= draw(st.integers(1, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif op == "repeat":
            chunk = data[at : at + draw(st.integers(1, 256))]
            data[at:at] = chunk * draw(st.integers(1, 8))
        elif op == "tail":
            data[at:] = draw(st.binary(max_size=512))
        elif op == "field" and target.fields:
            offset, size, order = draw(st.sampled_from(target.fields))
            if offset + size <= len(data):
                value = draw(st.sampled_from(BOUNDARY_INTS) | st.integers(0, (1 << (8 * size)) - 1))
                data[offset : offset + size] = _integer_bytes(value, size, order)
        elif op == "number":
            numbers = list(NUMBER.finditer(bytes(data[: target.text_limit])))
            if numbers:
                found = draw(st.sampled_from(numbers))
                data[found.start() : found.end()] = draw(
                    st.sampled_from(NUMBER_TEXTS) | st.integers().map(lambda n: str(n).encode()))
        elif op == "token" and target.tokens:
            present = [token for token in target.tokens if token in data]
            if present:
                old = draw(st.sampled_from(present))
                starts = [m.start() for m in re.finditer(re.escape(old), bytes(data))]
                start = draw(st.sampled_from(starts))
                data[start : start + len(old)] = draw(st.sampled_from(target.tokens))
    if target.fix is not None and draw(st.integers(0, 3)) > 0:
        return target.fix(bytes(data))
    return bytes(data)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
    | st.sampled_from([2**64, -(2**63), 10**30, -1, 0, 1, "", "siren", "tanh", "image", "sdf"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=6,
)


def _json_paths(value: object, prefix: tuple = ()) -> Iterator[tuple]:
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _json_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _json_paths(item, (*prefix, index))


@st.composite
def mutated_json(draw: st.DrawFn, document: object) -> object:
    """``document`` with one to three values replaced by random JSON, nudged, or dropped."""
    document = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(_json_paths(document))))
        if not path:
            document = draw(JSON_VALUES)
            continue
        parent = document
        for key in path[:-1]:
            parent = parent[key]
        key, value = path[-1], parent[path[-1]]
        action = draw(st.sampled_from(("replace", "nudge", "drop")))
        if action == "drop":
            del parent[key]
        elif action == "nudge" and isinstance(value, (int, float)) and not isinstance(value, bool):
            parent[key] = draw(st.sampled_from((value - 1, value + 1, -value, value * 1000, 0, type(value)(1e9))))
        else:
            parent[key] = draw(JSON_VALUES)
    return document


# --- seeds --------------------------------------------------------------------------------------------------


def _png_crcs(data: bytes) -> bytes:
    """``data`` with the CRC of every PNG chunk recomputed (so a changed field reaches the decoder)."""
    out, position = bytearray(data), 8
    while position + 12 <= len(out):
        end = position + 8 + int.from_bytes(out[position : position + 4], "big")
        if end + 4 > len(out):
            break
        out[end : end + 4] = zlib.crc32(out[position + 4 : end]).to_bytes(4, "big")
        position = end + 4
    return bytes(out)


def _npy_length(data: bytes) -> bytes:
    """``data`` with a version-1 .npy header length that reaches the first newline."""
    newline = data.find(b"\n", 10)
    if data[:8] != b"\x93NUMPY\x01\x00" or newline < 0:
        return data
    return data[:8] + (newline - 9).to_bytes(2, "little") + data[10:]


def _sphere_grid(n: int = 8) -> np.ndarray:
    axis = np.linspace(-1, 1, n)
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    return (np.sqrt(x * x + y * y + z * z) - 0.5).astype(np.float32)


def _point_cloud() -> bytes:
    sphere = trimesh.creation.icosphere(subdivisions=1)
    header = ("ply\nformat ascii 1.0\nelement vertex %d\nproperty float x\nproperty float y\nproperty float z\n"
              "property float nx\nproperty float ny\nproperty float nz\nend_header\n" % len(sphere.vertices))
    rows = "".join(" ".join(f"{v:.4f}" for v in (*p, *n)) + "\n" for p, n in zip(sphere.vertices, sphere.vertex_normals))
    return (header + rows).encode()


PLY_TOKENS = (b"float", b"double", b"uchar", b"int", b"list uchar int", b"binary_little_endian", b"binary_big_endian",
              b"ascii", b"vertex", b"face", b"nx", b"x")
GLB_FIELDS = ((4, 4, "little"), (8, 4, "little"), (12, 4, "little"), (16, 4, "little"))
NPY_DTYPES = ("<f4", "<f8", ">f4", "<f2", "<i4", "|u1", "|b1", "<c8", "O", "<U3", "|V4", "<M8[s]", "<f16")

TARGETS = {
    "png": Target(".png", load_image, 500, fields=((16, 4, "big"), (20, 4, "big"), (24, 1, "big"), (25, 1, "big"),
                                                    (26, 1, "big"), (28, 1, "big"), (8, 4, "big")), fix=_png_crcs),
    "wav": Target(".wav", load_audio, 500, fields=((4, 4, "little"), (16, 4, "little"), (20, 2, "little"),
                                                    (22, 2, "little"), (24, 4, "little"), (28, 4, "little"),
                                                    (32, 2, "little"), (34, 2, "little"), (40, 4, "little"))),
    "ply": Target(".ply", sdf_io.load_sdf, 150, tokens=PLY_TOKENS, text_limit=300),
    "obj": Target(".obj", sdf_io.load_sdf, 150, tokens=(b"v ", b"f ", b"vn ", b"#", b"/")),
    "stl": Target(".stl", sdf_io.load_sdf, 150, fields=((80, 4, "little"),)),
    "off": Target(".off", sdf_io.load_sdf, 150, tokens=(b"OFF", b"COFF", b"3 ")),
    "glb": Target(".glb", sdf_io.load_sdf, 150, fields=GLB_FIELDS, tokens=JSON_TOKENS, text_limit=1200),
    "cloud": Target(".ply", sdf_io.load_sdf, 200, tokens=PLY_TOKENS),
    "npy": Target(".npy", sdf_io.load_sdf, 400, fields=((8, 2, "little"),), text_limit=128, fix=_npy_length,
                  tokens=tuple(f"'{d}'".encode() for d in NPY_DTYPES) + (b"True", b"False", b"()", b"{}")),
}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module", autouse=True)
def small_bank() -> Iterator[None]:
    """A small SDF sample bank, so that a mutated mesh that still loads takes milliseconds (the checks are the same)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sdf_io, "BANK", {"surface": 200, "near_fine": 200, "near_coarse": 200, "uniform": 200})
        yield


@pytest.fixture(scope="module")
def seeds(scratch: Path, small_bank: None) -> dict[str, bytes]:
    """Valid files, one per target; each is checked to load."""
    sphere = trimesh.creation.icosphere(subdivisions=1)
    grid = bytes_io.BytesIO()
    np.save(grid, _sphere_grid())
    found = {
        "png": (DATASETS / "camera-128.png").read_bytes(),
        "wav": (DATASETS / "speech-16k.wav").read_bytes(),
        **{kind: sphere.export(file_type=kind) for kind in ("ply", "obj", "stl", "off", "glb")},
        "cloud": _point_cloud(),
        "npy": grid.getvalue(),
    }
    for name, content in found.items():
        path = scratch / f"seed-{name}{TARGETS[name].suffix}"
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        TARGETS[name].load(path)
        found[name] = path.read_bytes()
    return found


@pytest.fixture(scope="module")
def run_seed(scratch: Path) -> Path:
    """The run directory of a tiny real fit (16x16 image, 3 steps)."""
    from inrkit.config import ModelOptions, TrainConfig
    from inrkit.pipeline import fit_file

    image = scratch / "small.png"
    Image.open(DATASETS / "camera-128.png").resize((16, 16)).save(image)
    run = scratch / "seed-run"
    fit_file(image, run, train_config=TrainConfig(steps=3), model_options=ModelOptions(params=300))
    load_run(run)
    return run


def test_the_memory_cap_turns_a_runaway_allocation_into_a_failure(tmp_path: Path) -> None:
    if resource is None or not Path("/proc/self/statm").exists():
        pytest.skip("RLIMIT_AS needs Linux")

    def greedy(path: Path) -> None:
        np.ones(MEMORY_HEADROOM + (1 << 30), dtype=np.uint8)

    before = resource.getrlimit(resource.RLIMIT_AS)
    with pytest.raises(AssertionError, match="tried to allocate"):
        survives(greedy, tmp_path / "anything")
    assert resource.getrlimit(resource.RLIMIT_AS) == before  # the limit is lifted afterwards


# --- the fuzz tests -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(TARGETS))
def test_mutated_files_load_or_raise_inrkit_errors(name: str, seeds: dict[str, bytes], scratch: Path) -> None:
    target, path = TARGETS[name], scratch / f"input{TARGETS[name].suffix}"

    @fuzz(target.examples)
    @given(content=mutated(seeds[name], target))
    def check(content: bytes) -> None:
        path.write_bytes(content)
        survives(target.load, path)

    check()


@st.composite
def npy_files(draw: st.DrawFn, body: bytes) -> bytes:
    """A .npy file with a random header (shape, dtype, order, version) and some of a real grid's data."""
    header = {
        "descr": draw(st.sampled_from(NPY_DTYPES)),
        "fortran_order": draw(st.booleans()),
        "shape": draw(st.just((8, 8, 8)) | st.lists(st.sampled_from(BOUNDARY_INTS + (-1, 8))
                                                     | st.integers(-2, 20), max_size=5).map(tuple)),
    }
    if draw(st.integers(0, 3)) == 3:
        del header[draw(st.sampled_from(sorted(header)))]
    if draw(st.integers(0, 7)) == 7:
        header = draw(st.sampled_from([[], (), "x", 1, {"descr": [("a", "<f4")], "shape": (2,)}]))
    text = repr(header)
    text += " " * (-(len(text) + 13) % 64) + "\n"
    major = draw(st.sampled_from((1, 1, 2, 3)))
    length = len(text).to_bytes(2 if major == 1 else 4, "little")
    data = draw(st.just(body) | st.builds(lambda n, k: body * n + body[:k], st.integers(0, 3), st.integers(0, len(body))))
    return b"\x93NUMPY" + bytes((major, 0)) + length + text.encode("latin-1") + data


def test_npy_headers_load_or_raise_inrkit_errors(seeds: dict[str, bytes], scratch: Path) -> None:
    path = scratch / "header.npy"
    body = seeds["npy"][128:]

    @fuzz(500)
    @given(content=npy_files(body))
    def check(content: bytes) -> None:
        path.write_bytes(content)
        survives(sdf_io.load_sdf, path)

    check()


@pytest.fixture(scope="module")
def glb_parts(seeds: dict[str, bytes]) -> tuple[object, bytes]:
    """The JSON document and the binary chunk of the GLB seed."""
    glb = seeds["glb"]
    length = int.from_bytes(glb[12:16], "little")
    return json.loads(glb[20 : 20 + length]), glb[28 + length :]


def _glb(document: object, binary: bytes) -> bytes:
    text = json.dumps(document).encode()
    text += b" " * (-len(text) % 4)
    chunks = len(text).to_bytes(4, "little") + b"JSON" + text + len(binary).to_bytes(4, "little") + b"BIN\0" + binary
    return b"glTF" + (2).to_bytes(4, "little") + (12 + len(chunks)).to_bytes(4, "little") + chunks


def test_glb_documents_load_or_raise_inrkit_errors(glb_parts: tuple[object, bytes], scratch: Path) -> None:
    path, (document, binary) = scratch / "document.glb", glb_parts
    assert _glb(document, binary)  # (the seed round-trips: tested by the fuzzing's unmutated successes)

    @fuzz(400)
    @given(content=mutated_json(document).map(lambda d: _glb(d, binary)))
    def check(content: bytes) -> None:
        path.write_bytes(content)
        survives(sdf_io.load_sdf, path)

    check()


def _safetensors(header: object, data: bytes) -> bytes:
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + data


@pytest.mark.parametrize("part", ["config-bytes", "config-json", "model-bytes", "model-header"])
def test_mutated_run_directories_load_or_raise_inrkit_errors(part: str, run_seed: Path, scratch: Path) -> None:
    run = scratch / f"run-{part}"
    shutil.copytree(run_seed, run, dirs_exist_ok=True)
    config = (run_seed / "config.json").read_bytes()
    model = (run_seed / "model.safetensors").read_bytes()
    length = int.from_bytes(model[:8], "little")
    header, data = json.loads(model[8 : 8 + length]), model[8 + length :]
    file, strategy, examples = {
        "config-bytes": ("config.json", mutated(config, Target(".json", load_run, 0, tokens=JSON_TOKENS)), 300),
        "config-json": ("config.json", mutated_json(json.loads(config)).map(lambda c: json.dumps(c).encode()), 700),
        "model-bytes": ("model.safetensors",
                        mutated(model, Target("", load_run, 0, fields=((0, 8, "little"),), tokens=JSON_TOKENS,
                                              text_limit=8 + length)), 400),
        "model-header": ("model.safetensors", mutated_json(header).map(lambda h: _safetensors(h, data)), 500),
    }[part]

    @fuzz(examples)
    @given(content=strategy)
    def check(content: bytes) -> None:
        (run / file).write_bytes(content)
        survives(load_run, run)

    check()


# --- regressions: the minimal files the fuzzer found --------------------------------------------------------


def _one_line(error_type: type[InrkitError], load: Callable[[Path], object], path: Path) -> str:
    with pytest.raises(error_type) as caught:
        load(path)
    assert "\n" not in str(caught.value)
    return str(caught.value)


def test_an_obj_vertex_with_two_coordinates_is_one_error(tmp_path: Path) -> None:
    # trimesh returned [N, 2] vertices and sampling the surface raised "cannot reshape array" (ValueError).
    path = tmp_path / "flat.obj"
    path.write_bytes(b"v 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    assert "not x, y, z per vertex" in _one_line(InputError, sdf_io.load_sdf, path)


def test_a_truncated_ascii_point_cloud_row_is_one_error(tmp_path: Path) -> None:
    # A short last row made the normals an object array: "setting an array element with a sequence" (ValueError).
    path = tmp_path / "cloud.ply"
    path.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\n"
                     b"property float nx\nproperty float ny\nproperty float nz\nend_header\n0 0 0 0 0 1\n1 1 1\n")
    assert "truncated or damaged" in _one_line(InputError, sdf_io.load_sdf, path)


@pytest.mark.parametrize("content", [
    b"\x93NUMPY\x01\x00\x06\x00{'a':\n",  # tokenize.TokenError: a header length reaching into the data
    b"\x93NUMPY\x01\x00\x04\x00(\n\xd7\n",  # (the same)
    b"\x93NUMPY\x01\x00\x35\x00{'descr': (), 'fortran_order': False, 'shape': (8,)}\n",  # IndexError from numpy
])
def test_an_npy_header_numpy_cannot_parse_is_one_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "grid.npy"
    path.write_bytes(content)
    assert "not a readable .npy file" in _one_line(InputError, sdf_io.load_sdf, path)


def test_a_safetensors_dtype_that_is_a_list_is_one_error(run_seed: Path, tmp_path: Path) -> None:
    # {"dtype": []} raised "unhashable type: 'list'" (TypeError) in the header check.
    run = shutil.copytree(run_seed, tmp_path / "run")
    model = (run / "model.safetensors").read_bytes()
    length = int.from_bytes(model[:8], "little")
    header = json.loads(model[8 : 8 + length])
    header["input.phases"]["dtype"] = []
    (run / "model.safetensors").write_bytes(_safetensors(header, model[8 + length :]))
    assert "has dtype []" in _one_line(RunDirError, load_run, run)


@pytest.mark.parametrize("shape", ["(-1, 8, 8)", "(0, 18446744073709551615)"])
def test_an_npy_shape_outside_int64_is_one_error(tmp_path: Path, shape: str) -> None:
    # Not a crash, but numpy's own size computation overflowed (a RuntimeWarning) before it refused the file.
    text = f"{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}}}".encode()
    path = tmp_path / "grid.npy"
    path.write_bytes(b"\x93NUMPY\x01\x00" + (len(text) + 1).to_bytes(2, "little") + text + b"\n")
    assert "impossible shape" in _one_line(InputError, sdf_io.load_sdf, path)


def test_a_negative_face_index_is_named_in_the_error(tmp_path: Path) -> None:
    # Not a crash: the message named the largest index (2) instead of the bad one.
    path = tmp_path / "mesh.ply"
    path.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 4\nproperty float x\nproperty float y\nproperty float z\n"
                     b"element face 1\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n"
                     b"3 0 -1 2\n")
    assert "refer to vertex -1 but only vertices 0 to 3 exist" in _one_line(InputError, sdf_io.load_sdf, path)


def test_an_unknown_model_key_with_a_newline_stays_one_line(run_seed: Path, tmp_path: Path) -> None:
    # {"model": {"\n": null}}: the key was printed raw, so the RunDirError message spanned two lines.
    run = shutil.copytree(run_seed, tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    config["model"]["\n" + "x" * 200] = None
    (run / "config.json").write_text(json.dumps(config))
    assert "model.\\nxxx" in _one_line(RunDirError, load_run, run)


@pytest.mark.parametrize("key", ["bandlimit", "low_bandlimit"])
def test_a_bandlimit_over_int64_is_one_error(run_seed: Path, tmp_path: Path, key: str) -> None:
    # [1, 2**63] passed the schema and torch raised "Overflow when unpacking long long" (ValueError) building the model.
    run = shutil.copytree(run_seed, tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    config["model"][key] = [1, 2**63]
    (run / "config.json").write_text(json.dumps(config))
    assert f"model.{key}[1] must be a whole number from 1 to 9223372036854775807" in _one_line(RunDirError, load_run, run)
