"""The .inr format: quantisation, entropy coding, round trip bit for bit, and refusal of damaged files."""

import hashlib
import json
import struct
import zlib

import numpy as np
import pytest
import torch
from inrkit.checkpoint import RUN_FORMAT, load_run
from inrkit.config import ModelConfig
from inrkit.entropy import CODERS, Stream, decode, encode
from inrkit.errors import ConfigError, RunDirError
from inrkit.model import build_model
from inrkit.packing import (
    HEADER_DICTIONARY,
    MAGIC,
    PACK_VERSION,
    TensorPlan,
    default_plan,
    pack,
    quantised_state,
    read_packed,
    unpack,
)
from inrkit.quantise import (
    MAX_BITS,
    MIN_BITS,
    dequantise,
    largest_level,
    quantise,
    round_trip,
)

SIGNAL = {"kind": "image", "dims": 2, "channels": 3, "grid_shape": [12, 16], "extent": [0.75, 1.0],
          "nyquist": [7.3, 7.5], "data_range": 2.0, "metadata": {"mode": "RGB", "bit_depth": 8, "peak": 255},
          "signal_type": "image", "exporter": "png", "source": "/home/someone/secret/photo.png",
          "source_sha256": "ab" * 32}


def tiny_model(architecture="lattice", bound_mode="project"):
    config = ModelConfig(dims=2, out_channels=3, input_frequencies=20, width=16, bandlimit=(6, 6),
                         low_bandlimit=(2, 2), architecture=architecture, bound_mode=bound_mode,
                         output_offset=(0.1, -0.2, 0.3), output_scale=(1.5, 0.5, 2.0))
    model = build_model(config)
    with torch.no_grad():  # trained-looking weights: heavier tails than the uniform initialisation
        for name, parameter in model.named_parameters():
            parameter.add_(0.01 * torch.randn(parameter.shape, generator=torch.Generator().manual_seed(len(name))))
    return model, {"format": RUN_FORMAT, "model": config.to_dict(), "signal": SIGNAL, "loss": "mse"}


@pytest.mark.parametrize("bits", range(MIN_BITS, MAX_BITS + 1))
def test_quantiser_error_is_at_most_half_a_step_at_every_depth(bits):
    values = np.random.default_rng(bits).normal(0, 0.3, (7, 9)).astype(np.float32)
    for granularity in ("tensor", "channel"):
        q = quantise(values, bits, granularity)
        assert np.abs(q.levels).max() == largest_level(bits)  # the peak is a level
        back = dequantise(q.levels, q.steps, q.shape)
        steps = np.repeat(q.steps, values.size // len(q.steps)).reshape(values.shape).astype(np.float64)
        # independent float64 check: |x - q step| <= step / 2 (plus float32 rounding)
        assert np.all(np.abs(values.astype(np.float64) - back) <= steps / 2 * (1 + 1e-5) + 1e-7)
        assert len(q.steps) == (7 if granularity == "channel" else 1)


def test_quantiser_refuses_bad_depths_and_handles_zero():
    for bits in (1, 17, 2.5, True):
        with pytest.raises(ConfigError, match="2 to 16"):
            quantise(np.ones(3, np.float32), bits)
    assert np.array_equal(round_trip(np.zeros(5, np.float32), 4), np.zeros(5, np.float32))
    with pytest.raises(ConfigError, match="NaN"):
        quantise(np.array([1.0, np.nan], np.float32), 8)


@pytest.mark.parametrize("coder", CODERS)
def test_every_coder_round_trips_streams(coder):
    rng = np.random.default_rng(0)
    streams = [Stream.of(np.clip(np.rint(rng.laplace(0, 6, 500)), -127, 127)), Stream.of(np.full(40, 3)),
               Stream.of(np.zeros(0)), Stream.of(rng.integers(0, 30, 64))]
    data, params = encode(streams, coder)
    back = decode(data, params, [s.symbols.size for s in streams], coder)
    for stream, decoded in zip(streams, back):
        assert np.array_equal(stream.symbols, decoded)


def test_range_coder_is_close_to_the_empirical_entropy():
    symbols = np.clip(np.rint(np.random.default_rng(1).laplace(0, 8, 20_000)), -127, 127).astype(np.int32)
    _, counts = np.unique(symbols, return_counts=True)
    p = counts / counts.sum()
    entropy_bytes = -(p * np.log2(p)).sum() * symbols.size / 8  # an independent lower bound for an iid coder
    data, _ = encode([Stream.of(symbols)], "range")
    assert entropy_bytes <= len(data) <= 1.02 * entropy_bytes + 8
    raw, _ = encode([Stream.of(symbols)], "zstd")
    assert len(data) < len(raw)


@pytest.mark.parametrize("bits", range(MIN_BITS, MAX_BITS + 1))
def test_round_trip_is_bit_exact_at_every_depth(bits):
    model, sections = tiny_model()
    state = model.state_dict()
    plan = default_plan(state, bits, "channel" if bits % 2 else "tensor")
    header, tensors = unpack(pack(state, sections, plan, "range" if bits != 9 else "zstd"))
    expected = quantised_state(state, plan)
    assert set(tensors) == set(expected)
    for name, tensor in expected.items():
        assert tensors[name].dtype == tensor.dtype and torch.equal(tensors[name], tensor), name
    assert torch.equal(tensors["input.frequencies"], state["input.frequencies"])  # integers are lossless
    assert torch.equal(tensors["output.scale"], state["output.scale"])  # the output map is kept exact
    assert header["format_version"] == PACK_VERSION


@pytest.mark.parametrize("bits", range(3, MAX_BITS + 1))
def test_half_a_bit_lies_between_the_whole_depths_and_keeps_the_half_step_error(bits):
    largest = largest_level(bits, half=True)
    # round(2^(b - 1.5)) - 1, written out: the level count grows by sqrt(2) per half bit
    assert largest == int(np.floor(2.0 ** (bits - 1.5) + 0.5)) - 1
    assert largest_level(bits - 1) < largest < largest_level(bits)
    values = np.random.default_rng(bits).normal(0, 0.3, (6, 5)).astype(np.float32)
    q = quantise(values, bits, "tensor", half=True)
    assert np.abs(q.levels).max() == largest == q.largest
    step = np.abs(values).max().astype(np.float64) / largest
    assert np.isclose(q.steps[0], step, rtol=1e-6)
    back = dequantise(q.levels, q.steps, q.shape)
    assert np.all(np.abs(values.astype(np.float64) - back) <= step / 2 * (1 + 1e-5) + 1e-7)


def test_half_a_bit_below_two_bits_is_refused_and_plans_step_by_half_bits():
    with pytest.raises(ConfigError, match="no level"):
        largest_level(2, half=True)
    nine = TensorPlan(9, "channel")
    assert nine.shifted(-1) == TensorPlan(9, "channel", half=True) and nine.shifted(-1).depth == 8.5
    assert nine.shifted(-2) == TensorPlan(8, "channel") and nine.shifted(1) == TensorPlan(10, "channel", half=True)
    assert TensorPlan(3, half=True).shifted(-1) == TensorPlan(2) and TensorPlan(2).shifted(-1) is None
    assert TensorPlan(MAX_BITS).shifted(1) is None


def test_half_bit_plans_round_trip_bit_for_bit_and_shrink_the_file():
    model, sections = tiny_model()
    state = model.state_dict()
    whole = default_plan(state, 9)
    half = {name: entry.shifted(-1) if entry.bits == 9 else entry for name, entry in whole.items()}
    data = pack(state, sections, half, "range")
    header, tensors = unpack(data)
    expected = quantised_state(state, half)
    for name, tensor in expected.items():
        assert torch.equal(tensors[name], tensor), name
    # the file declares the whole depth (its reader checks the levels against it) and is smaller than at 9 bits
    assert {e["bits"] for e in header["tensors"] if e["name"].startswith("hidden")} == {9}
    assert len(data) < len(pack(state, sections, whole, "range"))
    assert len(data) > len(pack(state, sections, default_plan(state, 8), "range"))


def test_loaded_model_matches_the_dequantised_model_and_hides_the_source(tmp_path):
    model, sections = tiny_model(bound_mode="tanh")
    state = model.state_dict()
    plan = default_plan(state, 6)
    path = tmp_path / "x.inr"
    path.write_bytes(pack(state, sections, plan))
    run = load_run(path)
    reference, _ = tiny_model(bound_mode="tanh")
    reference.load_state_dict(quantised_state(state, plan))
    coords = torch.rand(300, 2) * 2 - 1
    with torch.no_grad():
        assert torch.equal(run.model(coords), reference.eval()(coords))
    assert run.signal["grid_shape"] == [12, 16] and run.signal["metadata"]["mode"] == "RGB"
    assert "source" not in run.signal and "source_sha256" not in run.signal
    assert b"secret" not in path.read_bytes()


def test_siren_packs_too():
    model, sections = tiny_model("siren")
    _, tensors = unpack(pack(model.state_dict(), sections, default_plan(model.state_dict(), 10)))
    assert set(tensors) == set(model.state_dict())


def good_file():
    model, sections = tiny_model()
    return pack(model.state_dict(), sections, default_plan(model.state_dict(), 8))


def rechecksum(body: bytes) -> bytes:
    return body + hashlib.sha256(body).digest()[:8]


def test_newer_version_is_refused_before_anything_else():
    data = bytearray(good_file())
    struct.pack_into("<H", data, len(MAGIC), PACK_VERSION + 1)
    with pytest.raises(RunDirError, match="version 2.*upgrade inrkit"):
        unpack(bytes(data))


def test_tampered_byte_fails_the_checksum():
    data = good_file()
    for position in (40, len(data) // 2, len(data) - 9):
        tampered = bytearray(data)
        tampered[position] ^= 0x10
        with pytest.raises(RunDirError, match="checksum"):
            unpack(bytes(tampered))


def test_every_truncation_is_refused():
    data = good_file()
    for length in range(0, len(data), 7):
        with pytest.raises(RunDirError, match="truncated|not an .inr file"):
            unpack(data[:length])
    with pytest.raises(RunDirError, match="after its end"):
        unpack(data + b"\0")


def with_header(data: bytes, edit) -> bytes:
    """``data`` with its header JSON edited by ``edit`` and a valid checksum (a consistent-looking forgery)."""
    _, version, header_len, coded_len, raw_len = struct.unpack_from("<8sHIII", data)
    start = struct.calcsize("<8sHIII")
    header = json.loads(zlib.decompressobj(-15, zdict=HEADER_DICTIONARY).decompress(data[start:start + header_len]))
    edit(header)
    squeezer = zlib.compressobj(9, zlib.DEFLATED, -15, zdict=HEADER_DICTIONARY)
    text = squeezer.compress(json.dumps(header).encode()) + squeezer.flush()
    rest = data[start + header_len:-8]
    return rechecksum(struct.pack("<8sHIII", MAGIC, version, len(text), coded_len, raw_len) + text + rest)


def test_non_inr_and_inconsistent_files_get_one_line(tmp_path):
    png = tmp_path / "photo.inr"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(RunDirError, match="not an .inr file"):
        read_packed(png)
    data = good_file()
    assert unpack(with_header(data, lambda h: None))  # the forgery helper itself makes loadable files
    forgeries = {
        "bit depth 20": lambda h: next(t for t in h["tensors"] if t["name"] == "hidden.0.weight").update(bits=20),
        "integer columns": lambda h: next(t for t in h["tensors"] if t["name"] == "input.frequencies").update(bits=8),
        "coded streams": lambda h: h["streams"].pop(),
        "unknown coder": lambda h: h.update(coder="pickle"),
        "tensors are not": lambda h: h["tensors"].pop(),
        "signal.dims": lambda h: h["signal"].update(dims=3),
        "packed header": lambda h: h.update(format="inrkit-run"),
        # 50 million direct lines: refused from the header alone, before a stream is decoded or allocated
        "stored numbers": lambda h: h["model"].update(direct=50_000_000),
    }
    for message, edit in forgeries.items():
        with pytest.raises(RunDirError, match=message):
            unpack(with_header(data, edit))
    with pytest.raises(RunDirError):
        load_run(tmp_path / "missing.inr")
    for text in (b"", b"INR"):
        (tmp_path / "short.inr").write_bytes(text)
        with pytest.raises(RunDirError, match="not an .inr file"):
            load_run(tmp_path / "short.inr")


def test_row_steps_are_float16_when_they_can_be_and_the_file_shrinks():
    values = np.random.default_rng(3).normal(0, 0.02, (40, 30)).astype(np.float32)
    assert quantise(values, 8, "channel").step_dtype == "f2"  # steps ~4e-4: normal float16
    assert quantise(values, 16, "channel").step_dtype == "f4"  # steps ~2e-6: subnormal, kept float32
    assert quantise(values, 8, "tensor").step_dtype == "f4"
    model, sections = tiny_model()
    state = model.state_dict()
    plan = default_plan(state, 8, "channel")
    header, tensors = unpack(pack(state, sections, plan))
    entry = next(t for t in header["tensors"] if t["name"] == "hidden.0.weight")
    assert entry["steps"] == "f2"
    assert torch.equal(tensors["hidden.0.weight"], quantised_state(state, plan)["hidden.0.weight"])


def test_a_packed_skip_model_is_rebuilt_with_its_skip(tmp_path):
    """The header carries ``skip`` (a non-default model key): the loaded model mixes its layers as the packed one."""
    from inrkit.packing import load_packed_run

    config = ModelConfig(dims=2, out_channels=3, input_frequencies=12, width=8, hidden_layers=3, bandlimit=(6, 6),
                         low_bandlimit=(2, 2), skip=0.5)
    model = build_model(config)
    state = model.state_dict()
    plan = default_plan(state, 10, "tensor")
    path = tmp_path / "skip.inr"
    path.write_bytes(pack(state, {"format": RUN_FORMAT, "model": config.to_dict(), "signal": SIGNAL, "loss": "mse"},
                          plan, "range"))
    run = load_packed_run(path)
    assert run.model_config.skip == 0.5
    coords = torch.rand(64, 2) * 2 - 1
    expected = build_model(config)
    expected.load_state_dict(quantised_state(state, plan))
    assert torch.equal(run.model(coords), expected(coords))
