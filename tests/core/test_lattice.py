import itertools

import pytest
import torch

from inrkit.errors import ConfigError
from inrkit.lattice import (
    half_space_count,
    in_half_space,
    lattice_nyquist,
    sample_lattice_frequencies,
    sample_uniform_frequencies,
)


def brute_half_space(bandlimit):
    ranges = [range(-b, b + 1) for b in bandlimit]
    return [v for v in itertools.product(*ranges) if any(v) and next(c for c in v if c != 0) > 0]


@pytest.mark.parametrize("bandlimit", [(7,), (3, 5), (2, 2, 3)])
def test_half_space_count_matches_enumeration(bandlimit):
    assert half_space_count(bandlimit) == len(brute_half_space(bandlimit))


def test_in_half_space_by_hand():
    vectors = torch.tensor([[1, -5], [0, 2], [0, -2], [-1, 3], [0, 0], [2, 0]])
    assert in_half_space(vectors).tolist() == [True, True, False, False, False, True]


def test_half_space_and_negation_partition_the_box():
    vectors = torch.tensor(brute_half_space((3, 3)))
    assert in_half_space(vectors).all()
    assert not in_half_space(-vectors).any()


@pytest.mark.parametrize(
    "count, bandlimit, low",
    [(40, (200,), (20,)), (120, (42, 42), (14, 14)), (300, (20, 20, 20), (6, 6, 6)), (50, (40, 20), (13, 7))],
)
def test_lattice_frequencies_are_valid(count, bandlimit, low):
    freqs = sample_lattice_frequencies(count, bandlimit, low, generator=torch.Generator().manual_seed(3))
    dims = len(bandlimit)
    assert freqs.shape == (count, dims) and freqs.dtype == torch.long
    assert in_half_space(freqs).all()
    assert len({tuple(r) for r in freqs.tolist()}) == count, "duplicates"
    assert (freqs.abs() <= torch.tensor(bandlimit)).all(), "outside the bandlimit"
    assert torch.equal(freqs[:dims], torch.eye(dims, dtype=torch.long)), "canonical basis first"
    in_low = (freqs.abs() <= torch.tensor(low)).all(dim=1)
    expected_low = min(half_space_count(low), round(0.7 * count))
    assert int(in_low.sum()) == expected_low


def test_low_block_exhausted_moves_rest_to_high():
    freqs = sample_lattice_frequencies(30, (50,), (5,), low_fraction=0.9)
    assert int((freqs.abs() <= 5).sum()) == 5  # the whole 1-D low block: 1..5


def test_uniform_frequencies_valid_and_spread():
    freqs = sample_uniform_frequencies(400, (42, 42), torch.Generator().manual_seed(1))
    assert in_half_space(freqs).all()
    assert len({tuple(r) for r in freqs.tolist()}) == 400
    # Uniform in the box: about a ninth of the half-space lies in |f| <= 14.
    share = float((freqs.abs() <= 14).all(dim=1).float().mean())
    assert 0.05 < share < 0.2


def test_seeded_sampling_is_reproducible():
    a = sample_lattice_frequencies(64, (30, 30), (10, 10), generator=torch.Generator().manual_seed(5))
    b = sample_lattice_frequencies(64, (30, 30), (10, 10), generator=torch.Generator().manual_seed(5))
    c = sample_lattice_frequencies(64, (30, 30), (10, 10), generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_too_many_frequencies_is_a_config_error():
    with pytest.raises(ConfigError, match="holds only 12"):
        sample_lattice_frequencies(13, (2, 2), (1, 1))
    with pytest.raises(ConfigError, match="at least 2"):
        sample_uniform_frequencies(1, (5, 5))


def test_lattice_nyquist_closed_form():
    # 129 samples spanning [-1, 1]: spacing 1/64, Nyquist 32 cycles per unit, times p = 4.
    assert lattice_nyquist([32.0]) == (128,)
    assert lattice_nyquist([32.0, 10.2], period=2.0) == (64, 20)
