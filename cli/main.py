"""``inrkit``: fit sinusoidal neural representations to signals and export them back.

Every error a user can cause is printed as one line on standard error and
exits with status 2; nothing half-written is left behind. The CLI knows no
signal type: defaults come from :mod:`inrkit.config`, signal-specific
options are declared by plugins (``--option NAME=VALUE``), metrics are shown
as their signal type declares, and plugins add their own commands.
"""

from __future__ import annotations

import functools
import json
import math
import sys
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from inrkit import __version__
from inrkit.config import (
    DEEP_LATTICE_LR,
    DEEP_SKIP,
    DEEP_SKIP_BY_DIMS,
    SKIP_MIN_WIDTH,
    DEFAULT_LR,
    FIT_STEPS,
    LR_DECAY_DIVISOR,
    PRUNE_L1,
    PRUNE_STEPS,
    ModelOptions,
    TrainConfig,
)

app = typer.Typer(
    name="inrkit",
    help="Fit compact sinusoidal neural representations (INRs) to audio, images and 3D shapes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


class _Guard:
    """Turn inrkit's errors (and OS errors on the user's files) into one line and exit 2; Ctrl-C into 130."""

    def __enter__(self) -> _Guard:
        self._shown = warnings.showwarning
        warnings.showwarning = _show_warning
        return self

    def __exit__(self, kind, error, traceback) -> bool:
        warnings.showwarning = self._shown
        if error is None:
            return False
        from inrkit.errors import InrkitError

        if isinstance(error, KeyboardInterrupt):
            # Run directories and exports are staged and renamed into place only
            # when complete, so an interrupt that gets here left nothing behind.
            typer.echo("interrupted: nothing was written", err=True)
            raise typer.Exit(130)
        if isinstance(error, InrkitError):
            _fail(str(error))
        if isinstance(error, OSError) and not isinstance(error, (BlockingIOError, InterruptedError)):
            where = f" {error.filename}" if getattr(error, "filename", None) else ""
            _fail(f"cannot access{where}: {error.strerror or error}; check the path and its permissions")
        return False


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    typer.echo(f"warning: {message}", err=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"inrkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = None,
) -> None:
    """Fit compact sinusoidal neural representations (INRs) to audio, images and 3D shapes."""


def _parse_resolution(text: str | None) -> list[int] | None:
    if text is None:
        return None
    parts = text.lower().replace("×", "x").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if not values or any(v < 1 for v in values):
        _fail(f"--resolution {text!r} is not valid; use positive whole numbers like 1024x768 (width x height) or 256")
    return values


def _parse_bandlimit(text: str | None) -> int | tuple[int, ...] | str | None:
    """``auto``, one whole number, or one per axis (``40,40,8``)."""
    if text is None or text == "auto":
        return text
    parts = [p.strip() for p in text.split(",")]
    if not all(p.lstrip("-").isdigit() for p in parts):
        _fail(f"--bandlimit must be a whole number, one per axis (like 40,40,8) or 'auto', got {text!r}")
    values = tuple(int(p) for p in parts)
    return values[0] if len(values) == 1 else values


def _parse_options(pairs: list[str] | None) -> dict[str, str]:
    """``NAME=VALUE`` pairs of ``--option``; the plugin that declared the option checks the value."""
    options: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            _fail(f"--option {pair!r} is not NAME=VALUE; the command's --help lists the options plugins declare")
        options[name.strip()] = value.strip()
    return options


_MODEL = ModelOptions()
_TRAIN = TrainConfig(steps=1)
OPTION_HELP = "NAME=VALUE option a plugin declares for the signal's loader (repeatable; see the list below)."


@app.command()
def fit(
    ctx: typer.Context,
    input: Annotated[Optional[Path], typer.Argument(help="Signal file to fit (image, audio, mesh... per installed plugins); none with --resume.")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Run directory to create (default runs/<input name>).")] = None,
    signal: Annotated[Optional[str], typer.Option("--signal", "-s", help="Signal type; default from the file extension.")] = None,
    option: Annotated[Optional[list[str]], typer.Option("--option", help=OPTION_HELP)] = None,
    params: Annotated[Optional[int], typer.Option(help="Largest number of stored parameters (frozen frequencies included); widths follow.")] = None,
    width: Annotated[Optional[int], typer.Option(help="Hidden width n (with --input-frequencies; overrides --params).")] = None,
    input_frequencies: Annotated[Optional[int], typer.Option(help="Number m of input (lattice) frequencies.")] = None,
    hidden_layers: Annotated[Optional[int], typer.Option(help="Hidden layers (lattice: 4 for images and other 2-D signals, 3 for audio and other 1-D signals when at least 40 wide (else 1), else 1, and 1 with pruning; siren, finer, ffn: 3; hashgrid: 2, as in their papers).")] = None,
    input_ratio: Annotated[Optional[float], typer.Option(help="m / n when widths follow from --params (default 1 with one hidden layer, 1.5 with more).")] = None,
    architecture: Annotated[str, typer.Option(help="lattice (the method), or a baseline at the same --params with its paper's settings: uniform; siren (Sitzmann et al., NeurIPS 2020); finer (Liu et al., CVPR 2024); ffn, Gaussian Fourier features + ReLU MLP (Tancik et al., NeurIPS 2020); hashgrid, multiresolution hash encoding + tiny MLP (Mueller et al., SIGGRAPH 2022).")] = _MODEL.architecture,
    bandlimit: Annotated[Optional[str], typer.Option(help="Largest lattice frequency B: one for all axes, one per axis (40,40,8), or 'auto' (from the signal's spectrum and the model size); default: the signal type's.")] = None,
    low_bandlimit: Annotated[Optional[int], typer.Option(help="Extent L of the dense low-frequency block (default B/3).")] = None,
    c_low: Annotated[float, typer.Option(help="Bound on hidden weights of low-frequency columns.")] = _MODEL.c_low,
    c_high: Annotated[float, typer.Option(help="Bound on hidden weights of high-frequency columns.")] = _MODEL.c_high,
    bound_mode: Annotated[str, typer.Option(help="project (clamp after each step) or tanh (reparametrised).")] = _MODEL.bound_mode,
    input_sampling: Annotated[str, typer.Option(help="How the lattice model draws its input frequencies: box (a dense low block, the rest uniform in the bandlimit box), spectrum (where the signal's smoothed spectrum has its energy; gridded signals, others keep box) or auto (spectrum when the signal's spectrum is concentrated: music, textures).")] = _MODEL.input_sampling,
    skip: Annotated[Optional[float], typer.Option(help=f"Share of its input each bounded layer after the first carries past it, y <- s y + (1 - s) sin(...), in [0, 1) (default with more than one hidden layer at least {SKIP_MIN_WIDTH} wide: {DEEP_SKIP:g}, {', '.join(f'{v:g} for {d}D signals' for d, v in DEEP_SKIP_BY_DIMS.items())}; lattice and uniform models).")] = None,
    direct: Annotated[Optional[int], typer.Option(help="Direct lines of the lattice model: the signal's K strongest spectral lines, added to the output as a sin + b cos (d + 2 x channels numbers each, taken from --params); 0 for none. Default: the signal type's share of --params where those lines alone reach 15 dB SNR (audio with sustained notes), else none.")] = None,
    siren_omega0: Annotated[Optional[float], typer.Option(help="First-layer omega_0 of --architecture siren and finer (default: follows the signal, as in the SIREN paper: 30 for images, 3000 for audio).")] = None,
    steps: Annotated[Optional[int], typer.Option(help=f"Stop after this many steps (default {FIT_STEPS} when no other rule is set).")] = None,
    max_seconds: Annotated[Optional[float], typer.Option(help="Stop after this many seconds of training.")] = None,
    target_psnr: Annotated[Optional[float], typer.Option(help="Stop when the training PSNR reaches this many dB.")] = None,
    lr: Annotated[Optional[float], typer.Option(help=f"Initial Adam learning rate (default {DEFAULT_LR:g}; {DEEP_LATTICE_LR:g} for a lattice model with more than two hidden layers, the image default).")] = None,
    lr_final: Annotated[Optional[float], typer.Option(help=f"Learning rate at the end of the budget (geometric decay; default lr/{LR_DECAY_DIVISOR}).")] = None,
    beta2: Annotated[float, typer.Option(help="Adam's second-moment decay (PyTorch's default is 0.999).")] = _TRAIN.beta2,
    phase_lr_scale: Annotated[float, typer.Option(help="Learning-rate multiplier of the input phases.")] = _TRAIN.phase_lr_scale,
    batch_size: Annotated[Optional[int], typer.Option(help="Coordinates per step (default: the signal type's, else all).")] = None,
    sampler: Annotated[Optional[str], typer.Option(help="full, uniform or stratified (with --batch-size); default: the signal type's.")] = None,
    loss: Annotated[Optional[str], typer.Option(help="Loss name (default: the signal type's; `inrkit plugins` lists them).")] = None,
    loss_weight: Annotated[float, typer.Option(help="Weight of a composite loss's second term (e.g. mse-stft's spectral term).")] = _TRAIN.loss_weight,
    holdout: Annotated[float, typer.Option(help="Fraction of samples held out for a test PSNR.")] = _TRAIN.holdout,
    seed: Annotated[int, typer.Option(help="Seed of initialisation and sampling.")] = _TRAIN.seed,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = _TRAIN.device,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing run directory (never any other folder).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")] = False,
    spectrum_every: Annotated[Optional[int], typer.Option(help="Record the reconstruction's spectrum every N steps into spectrum_steps.png.")] = None,
    prune: Annotated[bool, typer.Option("--prune", help="Find a smaller model: fit on half the budget, then prune and fine-tune in rounds while the PSNR stays within --prune-tolerance (or at --target-psnr).")] = False,
    l1: Annotated[Optional[float], typer.Option(help=f"L1 weight on the hidden weights (default {PRUNE_L1:g} with --prune, else 0).")] = None,
    l1_schedule: Annotated[str, typer.Option(help="constant, or ramp (from 0 over the first half).")] = "constant",
    prune_tolerance: Annotated[float, typer.Option(help="dB of PSNR --prune may give up when no --target-psnr is set.")] = 0.5,
    add_prune_every: Annotated[Optional[int], typer.Option(help="Every N steps, replace the least important input frequencies with new ones from the residual's spectrum.")] = None,
    add_prune_count: Annotated[Optional[int], typer.Option(help="Input frequencies replaced each time (default 5%).")] = None,
    checkpoint_every: Annotated[Optional[str], typer.Option(help="Write a checkpoint every N steps, or every Ns / Nm (seconds / minutes), into a hidden folder .NAME.checkpoint beside the run directory, for --resume.")] = None,
    resume: Annotated[Optional[Path], typer.Option("--resume", help="Continue the checkpointed fit of this run directory (no INPUT; only --quiet, --device and --checkpoint-every may be given).")] = None,
    pack: Annotated[bool, typer.Option("--pack", help="Also pack the run into RUN_DIR/model.inr (see `inrkit pack`); its size and PSNR go to metrics.json.")] = False,
    bits: Annotated[Optional[int], typer.Option(help="With --pack: one bit depth (2-16) for every tensor (default: chosen per tensor).")] = None,
) -> None:
    """Fit a sinusoidal INR to a signal file and write a run directory.

    The run directory holds model.safetensors, config.json, metrics.json,
    the reconstruction and pictures. It appears only when complete.
    """
    settings = dict(locals())
    with _Guard():
        from inrkit.pipeline import fit_file

        if resume is not None:
            _resume(ctx, resume, checkpoint_every, device, quiet)
            return
        if input is None:
            _fail("missing INPUT, the signal file to fit (or --resume RUN_DIR to continue a checkpointed fit); "
                  "see `inrkit fit --help`")

        if pack or bits is not None:  # checked before training
            from inrkit.cli.pack import check_fit_pack, fit_goal_for_pack
            check_fit_pack(pack, bits)
            target_psnr, settings["prune"] = fit_goal_for_pack(target_psnr, settings["prune"])
        model_options = _model_options(settings)
        train_config = TrainConfig.with_budget(
            FIT_STEPS, steps=steps, max_seconds=max_seconds, target_psnr=target_psnr, lr=lr, lr_final=lr_final,
            batch_size=batch_size, holdout=holdout, seed=seed, device=device, loss_weight=loss_weight, beta2=beta2,
            phase_lr_scale=phase_lr_scale,
        )
        train_config = replace(train_config, sampler=sampler)  # None: the signal type's sampler and batch size
        with _observed(quiet) as host:
            if sampler is not None:
                host.sampler(sampler)
            summary = fit_file(input, output or Path("runs") / input.stem, model_options=model_options,
                               train_config=train_config, signal_name=signal, loss_name=loss, overwrite=overwrite,
                               host=host, spectrum_every=spectrum_every, prune=_prune_options(settings),
                               load_options=_parse_options(option), checkpoint_every=checkpoint_every)
        if not quiet:
            _summarise(summary)
        if pack and not summary.interrupted:
            from inrkit.cli.pack import pack_after_fit
            pack_after_fit(summary.run_dir, bits, quiet, settings["target_psnr"])
        _exit_if_interrupted(summary)


#: The options ``inrkit fit --resume`` accepts besides itself: everything else comes from the checkpoint.
_RESUME_OPTIONS = {"resume", "quiet", "device", "checkpoint_every", "ctx"}


def _resume(ctx: typer.Context, run_dir: Path, checkpoint_every: str | None, device: str, quiet: bool) -> None:
    """``inrkit fit --resume RUN_DIR``: refuse what would contradict the checkpoint, then continue."""
    from inrkit.resume import resume_fit

    given = [p for p in ctx.command.params if p.name not in _RESUME_OPTIONS and _given(ctx, p.name)]
    if given:
        shown = next((name for name in given[0].opts if name.startswith("--")), given[0].name.upper())
        _fail(f"{shown} cannot be combined with --resume: the checkpoint fixes the input and every setting of the "
              "fit (only --quiet, --device and --checkpoint-every may be given); drop it")
    with _observed(quiet) as host:
        summary = resume_fit(run_dir, host=host, checkpoint_every=checkpoint_every,
                             device=device if _given(ctx, "device") else None)
    if not quiet:
        _summarise(summary)
    _exit_if_interrupted(summary)


def _model_options(settings: dict[str, Any]) -> ModelOptions:
    names = ("architecture", "params", "width", "input_frequencies", "hidden_layers", "input_ratio", "low_bandlimit",
             "c_low", "c_high", "bound_mode", "input_sampling", "skip", "direct", "siren_omega0", "seed")
    return ModelOptions(**{name: settings[name] for name in names}, bandlimit=_parse_bandlimit(settings["bandlimit"]))


def _prune_options(settings: dict[str, Any]):
    from inrkit.prune import PruneOptions

    return PruneOptions(
        l1=settings["l1"],
        l1_schedule=settings["l1_schedule"],
        shrink=settings["prune"],
        tolerance_db=settings["prune_tolerance"],
        add_prune_every=settings["add_prune_every"],
        add_prune_count=settings["add_prune_count"],
    )


class _observed:
    """The plugin host with the progress display attached for the duration of a job (training and long phases).

    ``announce``: print the host's problems (plugins skipped) as warnings first.
    """

    def __init__(self, quiet: bool, announce: bool = True):
        self.quiet, self.announce = quiet, announce

    def __enter__(self):
        from inrkit.cli.progress import ProgressBar
        from inrkit.host import get_host

        self.host = get_host()
        for problem in self.host.problems if self.announce else ():
            typer.echo(f"warning: {problem}", err=True)
        # A terminal gets a redrawn line; logs and CI a plain line every few seconds.
        self.bar = ProgressBar(stream=sys.stderr, enabled=not self.quiet, terminal=sys.stderr.isatty())
        self.host.pm.register(self.bar, name="inrkit-progress")
        return self.host

    def __exit__(self, *exc) -> bool:
        self.host.pm.unregister(self.bar)
        self.bar.close()
        return False


def _exit_if_interrupted(summary) -> None:
    """Ctrl-C ends with status 130 and says where the model trained so far went."""
    if not summary.interrupted:
        return
    if summary.result.stop_reason == "interrupted":
        message = f"interrupted at step {summary.result.steps}: the model trained so far was written to {summary.run_dir}"
        if summary.requested_dir is not None:
            message += f" (beside {summary.requested_dir}, which was left as it was)"
        message += _resume_hint(summary.requested_dir or summary.run_dir)
    else:
        message = f"interrupted while writing: the run was finished first and is complete in {summary.run_dir}"
    typer.echo(message, err=True)
    raise typer.Exit(130)


def _given(ctx: typer.Context, name: str) -> bool:
    """True when the user gave option ``name`` (typer vendors click: its ParameterSource is known by name)."""
    return getattr(ctx.get_parameter_source(name), "name", "DEFAULT") not in ("DEFAULT", "DEFAULT_MAP")


def _resume_hint(run_dir: Path) -> str:
    """How to continue an interrupted fit, when it left a checkpoint."""
    from inrkit.resume import checkpoint_step

    step = checkpoint_step(run_dir)
    if step is None:
        return ""
    return f"; its checkpoint (step {step}) was kept: continue with `inrkit fit --resume {run_dir}`"


#: How the core's own metrics are shown; plugins declare theirs in ``SignalType.show``.
CORE_SHOW = {"psnr": "psnr {value:.2f} dB", "test_psnr": "test_psnr {value:.2f} dB"}


def _shown_metrics(final: dict[str, Any], show: dict[str, str]) -> list[str]:
    formats = {**CORE_SHOW, **show}
    shown = []
    for key, template in formats.items():
        value = final.get(key)
        if isinstance(value, list) and value:
            numbers = [v for v in value if isinstance(v, float) and math.isfinite(v)]
            if numbers:
                shown.append(template.format(value=sum(numbers) / len(numbers)) + f" (mean of {len(numbers)})")
        elif isinstance(value, float) and math.isfinite(value):
            shown.append(template.format(value=value))
    return shown


def _summarise(summary) -> None:
    show = dict(summary.signal_type.show) if summary.signal_type is not None else {}
    shown = _shown_metrics(summary.metrics["final"], show)
    result = summary.result
    typer.echo(
        f"wrote {summary.run_dir}: {'  '.join(shown)}  {summary.parameters} parameters  "
        f"{result.steps} steps in {result.seconds:.1f} s (stopped by {result.stop_reason})"
    )
    path_taken = summary.metrics.get("prune_path")
    if path_taken:
        first = path_taken[0]["parameters"]
        change = f"{first} -> {summary.parameters} parameters" if first != summary.parameters else \
            f"{first} parameters kept (no cut stayed within the tolerance)"
        typer.echo(f"pruning path: {len(path_taken)} phases, {change} (see prune_path.png)")


@app.command("prune")
def prune_command(
    run: Annotated[Path, typer.Argument(help="Run directory written by `inrkit fit` (lattice or uniform model).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Run directory to create for the pruned model.")],
    target_params: Annotated[int, typer.Option(help="Largest number of stored parameters of the pruned model.")],
    steps: Annotated[Optional[int], typer.Option(help=f"Fine-tuning steps over all rounds (default {PRUNE_STEPS} when no other rule is set).")] = None,
    max_seconds: Annotated[Optional[float], typer.Option(help="Fine-tuning seconds over all rounds.")] = None,
    rounds: Annotated[int, typer.Option(help="Equal geometric cuts to reach the target, each fine-tuned (one cut measured best).")] = 1,
    lr: Annotated[Optional[float], typer.Option(help=f"Adam learning rate at the start of fine-tuning (default {DEFAULT_LR:g}).")] = None,
    lr_final: Annotated[Optional[float], typer.Option(help=f"Learning rate at the end (default lr/{LR_DECAY_DIVISOR}).")] = None,
    input: Annotated[Optional[Path], typer.Option("--input", help="The signal file, if it moved since the fit.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = _TRAIN.device,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing run directory (never any other folder).")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Refuse a signal file whose SHA-256 differs from the one the run recorded (default: warn).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")] = False,
) -> None:
    """Prune a fitted model to a parameter budget: remove its least important neurons, fine-tuning between cuts."""
    with _Guard():
        from inrkit.pipeline import prune_run
        from inrkit.prune import PruneOptions

        config = TrainConfig.with_budget(PRUNE_STEPS, steps=steps, max_seconds=max_seconds, lr=lr, lr_final=lr_final,
                                         device=device)
        options = PruneOptions(rounds=rounds, target_params=target_params)
        with _observed(quiet) as host:
            summary = prune_run(run, output, target_params=target_params, train_config=config, source=input,
                                overwrite=overwrite, host=host, options=options, strict=strict)
        if not quiet:
            _summarise(summary)
        _exit_if_interrupted(summary)


@app.command()
def export(
    run: Annotated[Path, typer.Argument(help="Run directory written by `inrkit fit`.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write; its extension picks the exporter.")],
    resolution: Annotated[Optional[str], typer.Option(help="Output grid, e.g. 1024x768 (width x height) for images.")] = None,
    option: Annotated[Optional[list[str]], typer.Option("--option", help="NAME=VALUE option the exporter declares (repeatable; see the list below), e.g. sample_rate=48000.")] = None,
    sample_rate: Annotated[Optional[str], typer.Option(hidden=True, help="Deprecated: --option sample_rate=HZ.")] = None,
    format: Annotated[Optional[str], typer.Option("--format", help="Exporter name (default: from the extension).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = _TRAIN.device,
) -> None:
    """Re-render a fitted model from its run directory alone, at any resolution."""
    with _Guard():
        from inrkit.pipeline import export_run

        options = _parse_options(option)
        if sample_rate is not None:  # the deprecated alias, until inrkit 0.3
            typer.echo("warning: --sample-rate is deprecated; use --option sample_rate=HZ", err=True)
            options.setdefault("sample_rate", sample_rate)  # the deprecated alias, until inrkit 0.3
        with _observed(quiet=False, announce=False):
            facts = export_run(run, output, options=options, exporter_name=format, device=device,
                               resolution=_parse_resolution(resolution))
        typer.echo(f"wrote {output}" + _facts(facts))


def _facts(facts: dict) -> str:
    shown = [f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}" for key, value in facts.items()]
    return f" ({', '.join(shown)})" if shown else ""


@app.command()
def spectrum(
    run: Annotated[Path, typer.Argument(help="Run directory written by `inrkit fit`, or a packed model (.inr).")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="PNG picture to write (default RUN/spectrum.png; for NAME.inr, NAME.spectrum.png).")] = None,
    json_output: Annotated[Optional[Path], typer.Option("--json", help="Also write the numbers here (default: beside the PNG).")] = None,
    input: Annotated[Optional[Path], typer.Option("--input", help="The signal file, if it moved since the fit.")] = None,
    max_order: Annotated[int, typer.Option(help="Largest |k|_1 of the predicted spectrum's terms (1 to 8).")] = 2,
    tol: Annotated[float, typer.Option(help="Skip predicted terms whose amplitude bound is below this (0 to 1).")] = 1e-4,
    strict: Annotated[bool, typer.Option("--strict", help="Refuse a signal file whose SHA-256 differs from the one the run recorded (default: warn).")] = False,
) -> None:
    """Spectra of target, reconstruction and prediction from the weights, side by side, plus diagnostics."""
    with _Guard():
        from inrkit.pipeline import spectrum_of_run

        if not 1 <= max_order <= 8:
            _fail(f"--max-order must be a whole number from 1 to 8, got {max_order}")
        if not (math.isfinite(tol) and 0 <= tol < 1):
            _fail(f"--tol must be a number in [0, 1), got {tol}")
        if output is None:  # a run directory gets RUN/spectrum.png; a packed model NAME.inr gets NAME.spectrum.png
            output = run.with_suffix(".spectrum.png") if run.is_file() else run / "spectrum.png"
        if output.suffix.lower() != ".png":
            _fail(f"-o {output} must end in .png")
        numbers = json_output or output.with_suffix(".json")
        with _observed(quiet=False, announce=False):
            summary = spectrum_of_run(run, output, numbers, source=input, max_order=max_order, tol=tol, strict=strict)
        noise = summary.get("noise_energy_fraction")
        typer.echo(
            f"wrote {output} and {numbers}: suggested bandlimit {summary['suggested_bandlimit']}"
            + (f", energy above Nyquist {noise:.2e}" if noise is not None else "")
        )


@app.command()
def plugins(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List installed plugins: name, distribution, version, what each provides, their options and clashes."""
    with _Guard():
        from inrkit.host import get_host

        host = get_host()
        clashes = host.extension_clashes()
        if as_json:
            typer.echo(json.dumps({"plugins": [p.to_dict() for p in host.plugins], "problems": host.problems,
                                   "extension_clashes": clashes, "options": _declared_options(host)}, indent=2))
            return
        for info in host.plugins:
            provided = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in sorted(info.provides.items()))
            typer.echo(f"{info.name:<12} {info.distribution} {info.version:<8} {provided}")
        for owner, lines in _declared_options(host).items():
            for line in lines:
                typer.echo(f"  {owner} --option {line}")
        for problem in [*host.problems, *clashes]:
            typer.echo(f"warning: {problem}", err=True)


def _declared_options(host) -> dict[str, list[str]]:
    """``{"signal image": [...], "exporter audio/wav": [...]}``: every option plugins declare, one line each."""
    declared = {}
    for name, signal_type in sorted(host.registry["signal"].items()):
        if signal_type.options:
            declared[f"signal {name}"] = [o.describe() for o in signal_type.options]
    shared: dict[tuple[str, tuple[str, ...]], list[str]] = {}  # exporters of one signal declaring the same options
    for (signal_name, name), exporter in sorted(host.registry["exporter"].items()):
        if exporter.options:
            shared.setdefault((signal_name, tuple(o.describe() for o in exporter.options)), []).append(name)
    for (signal_name, lines), names in shared.items():
        declared[f"exporter {signal_name}/{','.join(names)}"] = list(lines)
    return declared


from inrkit.cli import many as _many  # noqa: E402 - after fit, whose options it shares

_many.register(app)

from inrkit.cli import pack as _pack  # noqa: E402

_pack.register(app)

_BUILTIN_COMMANDS = {"fit", "export", "prune", "spectrum", "plugins", "fit-many", "pack", "rd"}
_commands_registered = False


class _GuardedApp:
    """The ``app`` plugins receive: their commands get the same one-line errors and exit codes as built-ins."""

    def __init__(self, target: typer.Typer):
        self._target = target

    def command(self, *args: Any, **kwargs: Any):
        register = self._target.command(*args, **kwargs)

        def decorate(function):
            @functools.wraps(function)
            def guarded(*call_args, **call_kwargs):
                with _Guard(), _observed(quiet=False, announce=False):
                    return function(*call_args, **call_kwargs)

            register(guarded)
            return function

        return decorate

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


def load_plugin_commands() -> None:
    """Add the commands plugins register (``inrkit_register_commands``); once per process."""
    global _commands_registered
    if _commands_registered:
        return
    from inrkit.host import get_host

    _commands_registered = True
    get_host().pm.hook.inrkit_register_commands(app=_GuardedApp(app))


def _describe_plugin_options(command: str) -> None:
    """Put the options plugins declare into ``inrkit fit --help`` / ``inrkit export --help``."""
    from inrkit.host import get_host

    declared = _declared_options(get_host())
    wanted = "signal" if command == "fit" else "exporter"
    lines = [f"{owner}: {line}" for owner, entries in declared.items() if owner.startswith(wanted) for line in entries]
    for info in app.registered_commands:
        if (info.name or info.callback.__name__) == command:
            info.epilog = "\b\nOptions declared by plugins (--option NAME=VALUE):\n" + (
                "\n".join(f"  {line}" for line in lines) if lines else "  none installed")


#: Where a bug is reported.
ISSUES_URL = "the inrkit issue tracker"


def _report_bug(error: BaseException) -> None:
    """An exception inrkit did not expect is a bug: show the traceback for the report, say so, exit 1."""
    import traceback

    traceback.print_exception(error)
    typer.echo(f"error: this is a bug in inrkit {__version__} ({type(error).__name__}), not a problem with your "
               f"input; please report it to {ISSUES_URL} with the traceback above and the command you ran", err=True)
    sys.exit(1)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point.

    Plugin commands are added first, unless a built-in command is called
    (so that e.g. ``inrkit --version`` does not load every plugin). Usage
    errors (an unknown option, a value of the wrong type) get the same one
    line and exit status 2 as every other error.
    """
    args = list(sys.argv[1:] if argv is None else argv) or ["--help"]
    with _Guard():
        if not args or (args[0] not in _BUILTIN_COMMANDS and args[0] != "--version"):
            load_plugin_commands()
        elif args[0] in ("fit", "export") and "--help" in args:
            _describe_plugin_options(args[0])
    try:
        code = app(args=args, prog_name="inrkit", standalone_mode=False)
    except Exception as error:  # noqa: BLE001 - typer vendors click: its usage errors are recognised by shape
        if type(error).__name__ == "Abort":
            typer.echo("interrupted: nothing was written", err=True)
            sys.exit(130)
        if getattr(error, "exit_code", None) != 2 or not hasattr(error, "format_message"):
            _report_bug(error)
        context = getattr(error, "ctx", None)
        path = getattr(context, "command_path", "") or ""
        command = f" {path.split(' ', 1)[1]}" if " " in path else ""
        typer.echo(f"error: {error.format_message()}; see `inrkit{command} --help`", err=True)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)
