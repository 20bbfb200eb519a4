"""Batched fits (inrkit.batched): K models in one computation give each model its single fit.

The reference is the single-fit path, an independent computation: the
models' own ``nn.Module`` layers and ``_BasisLinear`` with ``torch.mm``
through :func:`inrkit.train.fit`, against stacked weights and ``torch.bmm``.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from inrkit.batched import (
    CPU_GROUP_LIMIT,
    NotBatchable,
    _BatchedBasisLinear,
    batch_key,
    group_limit,
    model_bytes,
    train_batched,
)
from inrkit.config import ModelOptions, TrainConfig
from inrkit.host import get_host
from inrkit.pipeline import prepare_fit
from inrkit.train import fit
from PIL import Image

#: Stated tolerance of a batched model against its single fit after the steps below (float32 on the CPU).
WEIGHT_TOLERANCE = 1e-4
PSNR_TOLERANCE_DB = 0.01


def photos(folder: Path, count: int, size=(24, 20)) -> list[Path]:
    """Crops of a bundled photo (real image content, different for every signal)."""
    source = Image.open(Path(__file__).resolve().parents[2] / "datasets" / "astronaut-128.png")
    paths = []
    for k in range(count):
        path = folder / f"photo{k}.png"
        source.crop((9 * k, 5 * k, 9 * k + 60, 5 * k + 50)).resize(size).save(path)
        paths.append(path)
    return paths


SMALL = ModelOptions(params=900)


def prepared(paths, folder: Path, config: TrainConfig, options=SMALL, tag="b"):
    return [prepare_fit(p, folder / f"{tag}{k}", train_config=config, model_options=options) for k, p in
            enumerate(paths)]


def single(path: Path, folder: Path, config: TrainConfig, options=SMALL):
    job = prepare_fit(path, folder / f"single-{path.stem}", train_config=config, model_options=options)
    return fit(job.model, job.signal, job.train_config, job.loss.fn, job.host.sampler(job.train_config.sampler).make,
               device=job.device)


def assert_same_fit(batched, alone):
    mine, theirs = batched.model.state_dict(), alone.model.state_dict()
    assert mine.keys() == theirs.keys()
    worst = max(float((mine[k] - theirs[k]).abs().max()) for k in mine)
    assert worst < WEIGHT_TOLERANCE
    assert batched.steps == alone.steps and batched.stop_reason == alone.stop_reason
    assert abs(batched.curve[-1]["psnr"] - alone.curve[-1]["psnr"]) < PSNR_TOLERANCE_DB
    assert len(batched.curve) == len(alone.curve)


@pytest.mark.parametrize("sampler", ["full", "uniform"])
def test_each_batched_model_equals_its_single_fit(tmp_path, sampler):
    """Full batches (one stacked basis) and random mini-batches (per-model streams, gathered rows)."""
    paths = photos(tmp_path, 3)
    config = TrainConfig(steps=30, device="cpu", sampler=sampler, batch_size=None if sampler == "full" else 128,
                         seed=0)
    jobs = prepared(paths, tmp_path, config)
    assert len({batch_key(job) for job in jobs}) == 1
    results = train_batched(jobs)
    for path, result in zip(paths, results):
        assert_same_fit(result, single(path, tmp_path, config))
    # The models really differ (an identical copy K times would also "agree").
    assert float((results[0].model.input.phases - results[1].model.input.phases).detach().abs().max()) > 1e-3


@pytest.mark.parametrize("skip", [0.0, 0.5])
def test_two_hidden_layers_and_a_target_psnr_stop_each_model_at_its_own_step(tmp_path, skip):
    paths = photos(tmp_path, 3)
    options = ModelOptions(params=1200, hidden_layers=2, skip=skip)
    reached = single(paths[0], tmp_path, TrainConfig(steps=40, device="cpu", seed=0), options).curve[20]["psnr"]
    config = TrainConfig(steps=40, target_psnr=reached, device="cpu", seed=0)
    results = train_batched(prepared(paths, tmp_path, config, options))
    alone = [single(p, tmp_path, config, options) for p in paths]
    assert results[0].stop_reason == "target_psnr"
    assert {r.steps for r in alone} != {40}  # the stops differ between signals, or at least one stops early
    for mine, theirs in zip(results, alone):
        assert_same_fit(mine, theirs)


def test_batched_first_layer_gradient_matches_autograd_in_float64():
    """The hand-written backward of the stacked input layer against autograd of the plain formula."""
    generator = torch.Generator().manual_seed(3)
    k, rows, m, n = 3, 7, 5, 4
    sin_part, cos_part = (torch.rand(k, rows, m, generator=generator, dtype=torch.float64) for _ in range(2))
    phases = torch.rand(k, m, generator=generator, dtype=torch.float64, requires_grad=True)
    weight = torch.rand(k, n, m, generator=generator, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p, w: _BatchedBasisLinear.apply(sin_part, cos_part, p, w), (phases, weight))
    plain = torch.einsum("krm,knm->krn", sin_part * torch.cos(phases)[:, None] + cos_part * torch.sin(phases)[:, None],
                         weight)
    assert torch.allclose(_BatchedBasisLinear.apply(sin_part, cos_part, phases, weight), plain)


def test_a_loss_that_calls_the_model_is_not_batched(tmp_path):
    from inrkit.plugin_types import LossType

    def calls_the_model(context, batch):
        return torch.mean((context.model(batch.coords) - batch.target) ** 2)

    host = get_host()
    host.registry["loss"]["needs-model"] = LossType("needs-model", calls_the_model, "test")
    try:
        config = TrainConfig(steps=5, device="cpu")
        jobs = [prepare_fit(p, tmp_path / p.stem, train_config=config, model_options=ModelOptions(params=900),
                            loss_name="needs-model") for p in photos(tmp_path, 2)]
        before = [job.model.input.phases.detach().clone() for job in jobs]
        with pytest.raises(NotBatchable):
            train_batched(jobs)
        assert all(torch.equal(b, job.model.input.phases) for b, job in zip(before, jobs))  # nothing was updated
    finally:
        del host.registry["loss"]["needs-model"]


def test_what_is_never_batched_and_the_group_size(tmp_path):
    path = photos(tmp_path, 1)[0]
    config = TrainConfig(steps=5, device="cpu")
    siren = prepare_fit(path, tmp_path / "s", train_config=config, model_options=ModelOptions(architecture="siren",
                                                                                              params=900))
    assert batch_key(siren) is None
    small = prepare_fit(path, tmp_path / "a", train_config=config, model_options=ModelOptions(params=900))
    large = prepare_fit(path, tmp_path / "b", train_config=config, model_options=ModelOptions(params=3000))
    assert batch_key(small) != batch_key(large)  # mixed shapes: separate groups
    assert model_bytes(large) > model_bytes(small) > 4 * 900
    assert 1 <= group_limit(small) <= CPU_GROUP_LIMIT


def test_different_sample_counts_are_separate_groups(tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "o").mkdir()
    config = TrainConfig(steps=5, device="cpu")
    first = prepared(photos(tmp_path, 1, size=(24, 20)), tmp_path, config, tag="x")[0]
    turned = prepared([photos(tmp_path / "t", 1, size=(20, 24))[0]], tmp_path, config, tag="y")[0]
    other = prepared([photos(tmp_path / "o", 1, size=(16, 16))[0]], tmp_path, config, tag="z")[0]
    assert batch_key(first) == batch_key(turned)  # equal sample counts train together, whatever the grid
    assert batch_key(first) != batch_key(other)
    assert np.isfinite(model_bytes(first))


def test_observers_get_every_models_steps_with_that_steps_weights(tmp_path):
    """Each model's ``inrkit_step_end`` events, as a single fit sends them; the PSNR an observer measures by
    evaluating the model it is handed equals the event's (full batches: the step's own weights)."""
    from inrkit.hookspecs import hookimpl
    from inrkit.metrics import psnr
    from inrkit.train import evaluate

    class Observer:
        def __init__(self):
            self.signals, self.events, self.ended = {}, {}, 0

        @hookimpl
        def inrkit_fit_start(self, info):
            self.signals[id(info.model)] = info.signal

        @hookimpl
        def inrkit_step_end(self, step):
            signal = self.signals[id(step.model)]
            measured = psnr(evaluate(step.model, signal.coordinates()), signal.values, signal.data_range)
            self.events.setdefault(id(step.model), []).append((step.step, step.psnr, measured, step.progress))

        @hookimpl
        def inrkit_fit_end(self, result):
            self.ended += 1

    paths = photos(tmp_path, 3)
    jobs = prepared(paths, tmp_path, TrainConfig(steps=8, device="cpu", seed=0))
    observer = Observer()
    jobs[0].host.pm.register(observer)
    try:
        results = train_batched(jobs)
    finally:
        jobs[0].host.pm.unregister(observer)
    assert observer.ended == 3 and len(observer.events) == 3
    for job, result in zip(jobs, results):
        events = observer.events[id(job.model)]
        assert [e[0] for e in events] == list(range(8)) == [p["step"] for p in result.curve]
        assert [e[3] for e in events] == [k / 8 for k in range(8)]
        for _, reported, measured, _ in events:
            assert abs(reported - measured) < 1e-3
    assert len({round(observer.events[id(j.model)][-1][1], 6) for j in jobs}) == 3  # three different models
