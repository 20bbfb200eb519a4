"""``inrkit``: fit sinusoidal neural representations to signals and export them back.

Every error a user can cause is printed as one line on standard error and
exits with status 2; nothing half-written is left behind.
"""

from __future__ import annotations

import json
import math
import sys
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer

from inrkit import __version__

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
    """Turn inrkit's errors (and OS errors on the user's files) into one line and exit 2."""

    def __enter__(self) -> _Guard:
        self._shown = warnings.showwarning
        warnings.showwarning = _show_warning
        return self

    def __exit__(self, kind, error, traceback) -> bool:
        warnings.showwarning = self._shown
        if error is None:
            return False
        if isinstance(error, KeyboardInterrupt):
            # Run directories and exports are staged and renamed into place only
            # when complete, so an interrupt that gets here left nothing behind.
            typer.echo("interrupted: nothing was written", err=True)
            raise typer.Exit(130)
        from inrkit.errors import InrkitError

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


@app.command()
def fit(
    input: Annotated[Path, typer.Argument(help="Signal file to fit (image, audio, mesh... per installed plugins).")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Run directory to create (default runs/<input name>).")] = None,
    signal: Annotated[Optional[str], typer.Option("--signal", "-s", help="Signal type; default from the file extension.")] = None,
    params: Annotated[Optional[int], typer.Option(help="Largest number of stored parameters (frozen frequencies included); widths follow.")] = None,
    width: Annotated[Optional[int], typer.Option(help="Hidden width n (with --input-frequencies; overrides --params).")] = None,
    input_frequencies: Annotated[Optional[int], typer.Option(help="Number m of input (lattice) frequencies.")] = None,
    hidden_layers: Annotated[Optional[int], typer.Option(help="Bounded sine hidden layers (default 1; SIREN: 3).")] = None,
    input_ratio: Annotated[float, typer.Option(help="m / n when widths follow from --params.")] = 1.0,
    architecture: Annotated[str, typer.Option(help="lattice (the method), uniform or siren (baselines).")] = "lattice",
    bandlimit: Annotated[Optional[str], typer.Option(help="Largest lattice frequency B per axis, or 'auto' (from the signal's spectrum and the model size); default: the signal type's (images: auto).")] = None,
    low_bandlimit: Annotated[Optional[int], typer.Option(help="Extent L of the dense low-frequency block (default B/3).")] = None,
    c_low: Annotated[float, typer.Option(help="Bound on hidden weights of low-frequency columns.")] = 1.0,
    c_high: Annotated[float, typer.Option(help="Bound on hidden weights of high-frequency columns.")] = 0.6,
    bound_mode: Annotated[str, typer.Option(help="project (clamp after each step) or tanh (reparametrised).")] = "project",
    siren_omega0: Annotated[float, typer.Option(help="First-layer omega_0 of --architecture siren.")] = 30.0,
    steps: Annotated[Optional[int], typer.Option(help="Stop after this many steps (default 2000 when no other rule is set).")] = None,
    max_seconds: Annotated[Optional[float], typer.Option(help="Stop after this many seconds of training.")] = None,
    target_psnr: Annotated[Optional[float], typer.Option(help="Stop when the training PSNR reaches this many dB.")] = None,
    lr: Annotated[float, typer.Option(help="Initial Adam learning rate.")] = 2e-3,
    lr_final: Annotated[Optional[float], typer.Option(help="Learning rate at the end of the budget (geometric decay; default lr/10).")] = None,
    beta2: Annotated[float, typer.Option(help="Adam's second-moment decay (PyTorch's default is 0.999).")] = 0.99,
    phase_lr_scale: Annotated[float, typer.Option(help="Learning-rate multiplier of the input phases.")] = 10.0,
    batch_size: Annotated[Optional[int], typer.Option(help="Coordinates per step (default: all, full batch).")] = None,
    sampler: Annotated[Optional[str], typer.Option(help="full, uniform or stratified (with --batch-size); default: the signal's (full for images and audio, uniform batches for SDFs).")] = None,
    loss: Annotated[Optional[str], typer.Option(help="Loss name (default: the signal's).")] = None,
    loss_weight: Annotated[float, typer.Option(help="Weight of a composite loss's second term (e.g. mse-stft's spectral term).")] = 1.0,
    holdout: Annotated[float, typer.Option(help="Fraction of samples held out for a test PSNR.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of initialisation and sampling.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing run directory (never any other folder).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")] = False,
    spectrum_every: Annotated[Optional[int], typer.Option(help="Record the reconstruction's spectrum every N steps into spectrum_steps.png.")] = None,
    prune: Annotated[bool, typer.Option("--prune", help="Find a smaller model: fit on half the budget, then prune and fine-tune in rounds while the PSNR stays within --prune-tolerance (or at --target-psnr).")] = False,
    l1: Annotated[Optional[float], typer.Option(help="L1 weight on the hidden weights (default 1e-7 with --prune, else 0).")] = None,
    l1_schedule: Annotated[str, typer.Option(help="constant, or ramp (from 0 over the first half).")] = "constant",
    prune_tolerance: Annotated[float, typer.Option(help="dB of PSNR --prune may give up when no --target-psnr is set.")] = 0.5,
    add_prune_every: Annotated[Optional[int], typer.Option(help="Every N steps, replace the least important input frequencies with new ones from the residual's spectrum.")] = None,
    add_prune_count: Annotated[Optional[int], typer.Option(help="Input frequencies replaced each time (default 5%).")] = None,
) -> None:
    """Fit a sinusoidal INR to a signal file and write a run directory.

    The run directory holds model.safetensors, config.json, metrics.json,
    the reconstruction and pictures. It appears only when complete.
    """
    with _Guard():
        from inrkit.config import TrainConfig
        from inrkit.host import get_host
        from inrkit.pipeline import ModelOptions, fit_file

        from inrkit.cli.progress import ProgressBar

        if steps is None and max_seconds is None and target_psnr is None:
            steps = 2000
        if bandlimit is not None and bandlimit != "auto":
            if not bandlimit.lstrip("-").isdigit():
                _fail(f"--bandlimit must be a whole number or 'auto', got {bandlimit!r}")
            bandlimit = int(bandlimit)
        output = output or Path("runs") / input.stem
        train_config = TrainConfig(
            steps=steps,
            max_seconds=max_seconds,
            target_psnr=target_psnr,
            lr=lr,
            lr_final=lr_final if lr_final is not None else lr / 10,
            batch_size=batch_size,
            sampler=sampler,
            holdout=holdout,
            seed=seed,
            device=device,
            loss_weight=loss_weight,
            beta2=beta2,
            phase_lr_scale=phase_lr_scale,
        )
        model_options = ModelOptions(
            architecture=architecture,
            params=params,
            width=width,
            input_frequencies=input_frequencies,
            hidden_layers=hidden_layers,
            input_ratio=input_ratio,
            bandlimit=bandlimit,
            low_bandlimit=low_bandlimit,
            c_low=c_low,
            c_high=c_high,
            bound_mode=bound_mode,
            siren_omega0=siren_omega0,
            seed=seed,
        )
        from inrkit.prune import PruneOptions

        prune_options = PruneOptions(
            l1=(1e-7 if prune else 0.0) if l1 is None else l1,
            l1_schedule=l1_schedule,
            shrink=prune,
            tolerance_db=prune_tolerance,
            add_prune_every=add_prune_every,
            add_prune_count=add_prune_count,
        )
        host = get_host()
        for problem in host.problems:
            typer.echo(f"warning: {problem}", err=True)
        if sampler is not None:
            host.sampler(sampler)
        bar = ProgressBar(enabled=not quiet and sys.stderr.isatty())
        host.pm.register(bar, name="inrkit-progress")
        try:
            summary = fit_file(input, output, model_options, train_config, signal, loss, overwrite, host, spectrum_every,
                               prune_options)
        finally:
            host.pm.unregister(bar)
        if not quiet:
            _summarise(summary)
        _exit_if_interrupted(summary)


def _exit_if_interrupted(summary) -> None:
    """Ctrl-C ends with status 130 and says where the model trained so far went."""
    if not summary.interrupted:
        return
    if summary.result.stop_reason == "interrupted":
        message = f"interrupted at step {summary.result.steps}: the model trained so far was written to {summary.run_dir}"
        if summary.requested_dir is not None:
            message += f" (beside {summary.requested_dir}, which was left as it was)"
    else:
        message = f"interrupted while writing: the run was finished first and is complete in {summary.run_dir}"
    typer.echo(message, err=True)
    raise typer.Exit(130)


def _summarise(summary) -> None:
    final = summary.metrics["final"]
    shown = []
    for key, value in final.items():
        if not isinstance(value, float) or not math.isfinite(value):
            continue
        if key in ("psnr", "test_psnr", "snr"):
            shown.append(f"{key} {value:.2f} dB")
        elif key in ("ssim", "normal_consistency", "fscore", "iou"):
            shown.append(f"{key} {value:.4f}")
        elif key == "chamfer":
            shown.append(f"chamfer {100 * value:.3f}% of diagonal")
    result = summary.result
    typer.echo(
        f"wrote {summary.run_dir}: {'  '.join(shown)}  {summary.parameters} parameters  "
        f"{result.steps} steps in {result.seconds:.1f} s (stopped by {result.stop_reason})"
    )
    path_taken = summary.metrics.get("prune_path")
    if path_taken:
        first, last = path_taken[0], path_taken[-1]
        typer.echo(f"pruning path: {len(path_taken)} phases, {first['parameters']} -> {summary.parameters} parameters "
                   f"(see prune_path.png)")


@app.command("prune")
def prune_command(
    run: Annotated[Path, typer.Argument(help="Run directory written by `inrkit fit` (lattice or uniform model).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Run directory to create for the pruned model.")],
    target_params: Annotated[int, typer.Option(help="Largest number of stored parameters of the pruned model.")],
    steps: Annotated[Optional[int], typer.Option(help="Fine-tuning steps over all rounds (default 1000 when no other rule is set).")] = None,
    max_seconds: Annotated[Optional[float], typer.Option(help="Fine-tuning seconds over all rounds.")] = None,
    rounds: Annotated[int, typer.Option(help="Equal geometric cuts to reach the target, each fine-tuned (one cut measured best).")] = 1,
    lr: Annotated[float, typer.Option(help="Adam learning rate at the start of fine-tuning.")] = 2e-3,
    lr_final: Annotated[Optional[float], typer.Option(help="Learning rate at the end (default lr/10).")] = None,
    input: Annotated[Optional[Path], typer.Option("--input", help="The signal file, if it moved since the fit.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing run directory (never any other folder).")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Refuse a signal file whose SHA-256 differs from the one the run recorded (default: warn).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")] = False,
) -> None:
    """Prune a fitted model to a parameter budget: remove its least important neurons, fine-tuning between cuts."""
    with _Guard():
        from inrkit.config import TrainConfig
        from inrkit.host import get_host
        from inrkit.pipeline import prune_run
        from inrkit.prune import PruneOptions

        from inrkit.cli.progress import ProgressBar

        if steps is None and max_seconds is None:
            steps = 1000
        config = TrainConfig(steps=steps, max_seconds=max_seconds, lr=lr,
                             lr_final=lr_final if lr_final is not None else lr / 10, device=device)
        options = PruneOptions(rounds=rounds, target_params=target_params)
        host = get_host()
        bar = ProgressBar(enabled=not quiet and sys.stderr.isatty())
        host.pm.register(bar, name="inrkit-progress")
        try:
            summary = prune_run(run, output, target_params, config, input, overwrite, host, options, strict)
        finally:
            host.pm.unregister(bar)
        if not quiet:
            _summarise(summary)
        _exit_if_interrupted(summary)


@app.command()
def export(
    run: Annotated[Path, typer.Argument(help="Run directory written by `inrkit fit`.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write; its extension picks the exporter.")],
    resolution: Annotated[Optional[str], typer.Option(help="Output grid, e.g. 1024x768 (width x height) for images.")] = None,
    sample_rate: Annotated[Optional[int], typer.Option(help="Audio: output sample rate in Hz (default: the source's).")] = None,
    format: Annotated[Optional[str], typer.Option("--format", help="Exporter name (default: from the extension).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
) -> None:
    """Re-render a fitted model from its run directory alone, at any resolution."""
    with _Guard():
        from inrkit.pipeline import export_run

        options = {}
        parsed = _parse_resolution(resolution)
        if parsed is not None:
            options["resolution"] = parsed
        if sample_rate is not None:
            options["sample_rate"] = sample_rate
        facts = export_run(run, output, options, format, device=device)
        typer.echo(f"wrote {output}" + _facts(facts))


def _facts(facts: dict) -> str:
    shown = [f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}" for key, value in facts.items()]
    return f" ({', '.join(shown)})" if shown else ""


@app.command()
def mesh(
    run: Annotated[Path, typer.Argument(help="Run directory of an SDF fit (`inrkit fit --signal sdf`).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Mesh file to write: .ply, .obj, .stl or .glb.")],
    resolution: Annotated[int, typer.Option(help="Marching-cubes grid points per axis (e.g. 128, 256, 512).")] = 256,
    level: Annotated[float, typer.Option(help="Iso-level of the surface, in the input's distance units.")] = 0.0,
    smooth: Annotated[int, typer.Option(help="Taubin smoothing iterations (0: none).")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
) -> None:
    """Extract a mesh from a fitted signed distance field, in the input's original coordinates."""
    with _Guard():
        from inrkit.checkpoint import load_run
        from inrkit.pipeline import export_run

        kind = load_run(run).signal.get("signal_type")
        if kind != "sdf":
            _fail(f"{run} holds a {kind!r} fit, not an SDF; `inrkit mesh` needs a run of `inrkit fit --signal sdf`")
        if output.suffix.lower() not in (".ply", ".obj", ".stl", ".glb"):
            _fail(f"-o {output} must end in .ply, .obj, .stl or .glb (for the field on a grid use `inrkit export -o x.npy`)")
        options = {"resolution": [resolution] * 3, "level": level, "smooth": smooth}
        facts = export_run(run, output, options, None, device=device)
        typer.echo(f"wrote {output}" + _facts(facts))


@app.command()
def spectrum(
    run: Annotated[Path, typer.Argument(help="Run directory written by `inrkit fit`.")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="PNG picture to write (default RUN/spectrum.png).")] = None,
    json_output: Annotated[Optional[Path], typer.Option("--json", help="Also write the numbers here (default: beside the PNG).")] = None,
    input: Annotated[Optional[Path], typer.Option("--input", help="The signal file, if it moved since the fit.")] = None,
    max_order: Annotated[int, typer.Option(help="Largest |k|_1 of the predicted spectrum's terms.")] = 2,
    tol: Annotated[float, typer.Option(help="Skip predicted terms whose amplitude bound is below this.")] = 1e-4,
    strict: Annotated[bool, typer.Option("--strict", help="Refuse a signal file whose SHA-256 differs from the one the run recorded (default: warn).")] = False,
) -> None:
    """Spectra of target, reconstruction and prediction from the weights, side by side, plus diagnostics."""
    with _Guard():
        from inrkit.pipeline import spectrum_of_run

        output = output if output is not None else run / "spectrum.png"
        if output.suffix.lower() != ".png":
            _fail(f"-o {output} must end in .png")
        numbers = json_output or output.with_suffix(".json")
        summary = spectrum_of_run(run, output, numbers, input, max_order, tol, strict=strict)
        noise = summary.get("noise_energy_fraction")
        typer.echo(
            f"wrote {output} and {numbers}: suggested bandlimit {summary['suggested_bandlimit']}"
            + (f", energy above Nyquist {noise:.2e}" if noise is not None else "")
        )


@app.command()
def plugins(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List installed plugins: name, distribution, version and what each provides."""
    with _Guard():
        from inrkit.host import get_host

        host = get_host()
        if as_json:
            typer.echo(json.dumps({"plugins": [p.to_dict() for p in host.plugins], "problems": host.problems}, indent=2))
            return
        for info in host.plugins:
            provided = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in sorted(info.provides.items()))
            typer.echo(f"{info.name:<12} {info.distribution} {info.version:<8} {provided}")
        for problem in host.problems:
            typer.echo(f"warning: {problem}", err=True)


_BUILTIN_COMMANDS = {"fit", "export", "mesh", "prune", "spectrum", "plugins"}


def _register_plugin_commands() -> None:
    from inrkit.host import get_host

    get_host().pm.hook.inrkit_register_commands(app=app)


def main() -> None:
    """Console-script entry point.

    Plugin commands are added first, unless a built-in command is called
    (so that e.g. ``inrkit --version`` does not load every plugin).
    """
    args = sys.argv[1:]
    with _Guard():
        if not args or (args[0] not in _BUILTIN_COMMANDS and args[0] != "--version"):
            _register_plugin_commands()
        app()
