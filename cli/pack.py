"""``inrkit pack`` and ``inrkit rd``: compressed ``.inr`` model files, and rate-distortion against codecs.

Registered on the main app by :func:`register`; the helpers of :mod:`inrkit.cli.main` (one-line errors,
progress display) are imported when a command runs, so this module can be imported first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

GRANULARITY_HELP = "tensor (one step per tensor) or channel (one per output row of a matrix)."


def _main():
    from inrkit.cli import main

    return main


def describe(summary) -> str:
    """One line about a packed file: size against the float model, PSNR against the float model's, plan, coder."""
    bits = ", ".join(f"{name} {value}" for name, value in summary.bits.items())
    line = (f"{summary.bytes:,} bytes ({100 * summary.bytes / summary.float_bytes:.1f}% of the float32 model's "
            f"{summary.float_bytes:,}), PSNR {summary.psnr:.2f} dB (float model {summary.psnr_float:.2f} dB, "
            f"{summary.psnr - summary.psnr_float:+.2f} dB; against the {summary.reference}); bits: {bits}; "
            f"coder {summary.coder}")
    qat = summary.qat
    if qat.get("steps"):
        line += (f"; quantisation-aware finish ({qat['steps']} steps): {qat['psnr_before']:.2f} -> "
                 f"{qat['psnr_after']:.2f} dB ({'kept' if qat['kept'] else 'not kept'}"
                 f"{', with one bit fewer for the largest tensor' if qat.get('bits_lowered') else ''})")
    return line


def pack_command(
    run: Annotated[Path, typer.Argument(help="Run directory written by `inrkit fit`.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="The .inr file to write (default RUN/model.inr).")] = None,
    bits: Annotated[int | None, typer.Option(help="One bit depth (2-16) for every tensor; default: chosen per tensor.")] = None,
    target_psnr: Annotated[float | None, typer.Option(help="Smallest file reaching this PSNR (dB).")] = None,
    target_size: Annotated[str | None, typer.Option(help="Best PSNR in a file of at most this size: bytes, or 2.4KB, 4KiB.")] = None,
    granularity: Annotated[str, typer.Option(help=GRANULARITY_HELP)] = "tensor",
    coder: Annotated[str, typer.Option(help="auto (the smallest), range (constriction), zstd or lzma.")] = "auto",
    qat_steps: Annotated[int | None, typer.Option(help="Steps of the quantisation-aware finish (0: none).")] = None,
    input: Annotated[Path | None, typer.Option("--input", help="The signal file, if it moved since the fit.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary.")] = False,
) -> None:
    """Pack a run into one compressed .inr file (quantised, entropy-coded, checksummed), choosing bits per tensor.

    Without --bits, --target-psnr or --target-size, the smallest file within 0.3 dB of the float model's
    PSNR. `inrkit export x.inr` and `inrkit mesh x.inr` read it as they read a run directory.
    """
    main = _main()
    with main._Guard():
        from inrkit.entropy import CODERS
        from inrkit.errors import ConfigError
        from inrkit.packjob import QAT_STEPS, pack_run, parse_size
        from inrkit.quantise import GRANULARITIES, check_bits

        if bits is not None:
            check_bits(bits)
        if granularity not in GRANULARITIES:
            raise ConfigError(f"--granularity must be one of {', '.join(GRANULARITIES)}, got {granularity!r}")
        if coder not in ("auto", *CODERS):
            raise ConfigError(f"--coder must be one of auto, {', '.join(CODERS)}, got {coder!r}")
        size = parse_size(target_size) if target_size is not None else None
        with main._observed(quiet=quiet, announce=False) as host:
            summary = pack_run(run, output or Path(run) / "model.inr", bits=bits, target_psnr=target_psnr,
                               target_size=size, granularity=granularity, coder=coder,
                               qat_steps=QAT_STEPS if qat_steps is None else qat_steps, source=input, host=host)
        if not quiet:
            typer.echo(f"wrote {summary.path}: {describe(summary)}")


def check_fit_pack(pack: bool, bits: int | None) -> None:
    """``inrkit fit --pack [--bits B]``: the options, checked before training."""
    from inrkit.errors import ConfigError
    from inrkit.quantise import check_bits

    if bits is not None and not pack:
        raise ConfigError("--bits is an option of --pack; add --pack, or drop --bits")
    if bits is not None:
        check_bits(bits)


#: dB above ``--target-psnr`` that ``fit --target-psnr Q --pack`` fits to, so that the packed file can reach Q.
PACK_MARGIN_DB = 0.3


def fit_goal_for_pack(target_psnr: float | None, prune: bool) -> tuple[float | None, bool]:
    """``fit --target-psnr Q --pack``: the fit aims at Q + margin and searches the size by pruning (``--prune``)."""
    if target_psnr is None:
        return None, prune
    return target_psnr + PACK_MARGIN_DB, True


def pack_after_fit(run_dir: Path, bits: int | None, quiet: bool, target_psnr: float | None = None) -> None:
    """``inrkit fit --pack``: pack the new run into RUN/model.inr and add the result to its metrics.json.

    With ``target_psnr`` the smallest file reaching it (the fit was aimed above it and pruned to size); when the
    fit fell short, the default pack, with a warning. The search path goes to ``metrics.json`` and
    ``pack_path.png`` (file size against PSNR of every plan measured).
    """
    import json

    from inrkit.atomic import write_json
    from inrkit.checkpoint import METRICS_FILE
    from inrkit.errors import ConfigError
    from inrkit.packjob import pack_run

    main = _main()
    with main._observed(quiet=quiet, announce=False) as host:
        try:
            summary = pack_run(run_dir, Path(run_dir) / "model.inr", bits=bits, target_psnr=target_psnr, host=host)
        except ConfigError as error:
            if target_psnr is None:
                raise
            typer.echo(f"warning: the packed file cannot reach --target-psnr {target_psnr:g} ({error}); "
                       "packed within 0.3 dB of the fit instead", err=True)
            summary = pack_run(run_dir, Path(run_dir) / "model.inr", bits=bits, host=host)
    metrics_path = Path(run_dir) / METRICS_FILE
    metrics = json.loads(metrics_path.read_text())
    metrics["packed"] = summary.to_dict() | {"file": "model.inr", "search_path": summary.path_taken}
    write_json(metrics_path, metrics)
    if summary.path_taken:
        _path_picture(summary.path_taken, Path(run_dir) / "pack_path.png", target_psnr)
    if not quiet:
        typer.echo(f"packed {summary.path}: {describe(summary)}")


def best_plans(path_taken: list[dict]) -> list[dict]:
    """The plans no smaller plan beats in PSNR, by size: the best PSNR the search found for each file size."""
    frontier: list[dict] = []
    for plan in sorted(path_taken, key=lambda p: (p["bytes"], -p["psnr"])):
        if not frontier or plan["psnr"] > frontier[-1]["psnr"]:
            frontier.append(plan)
    return frontier


def _path_picture(path_taken: list[dict], picture: Path, goal: float | None) -> None:
    """PSNR against file size of every plan the bit-depth search measured (dots), and the best at each size (line),
    written to ``pack_path.png``."""
    import numpy as np
    from inrkit.atomic import atomic_output
    from inrkit.plots import line_chart

    def columns(plans: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        return (np.array([p["bytes"] for p in plans], dtype=np.float64),
                np.array([p["psnr"] for p in plans], dtype=np.float64))

    x, y = columns(sorted(path_taken, key=lambda p: p["bytes"]))
    series = [(x, y, (150, 180, 230), "plans measured"), (*columns(best_plans(path_taken)), (30, 90, 200),
                                                          "best plan at each size")]
    if goal is not None:
        series.append((x[[0, -1]], np.array([goal, goal]), (200, 30, 30), "--target-psnr"))
    image = line_chart(series, "packed file: PSNR (dB) against bytes", "bytes", log_y=False, scattered=(0,))
    with atomic_output(picture) as temporary:
        image.save(temporary, format="PNG")


def _numbers(text: str | None, what: str, kind=float) -> list:
    from inrkit.errors import ConfigError

    if text is None:
        return []
    try:
        values = [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or any(not value > 0 for value in values):
        raise ConfigError(f"{what} {text!r} is not a list of positive numbers like 1000,2000,4000")
    return values


def rd_command(
    input: Annotated[Path, typer.Argument(help="Signal file (image, audio...).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The chart to write (.png); the table goes beside it as .md and .json.")],
    params: Annotated[str | None, typer.Option(help="Model sizes to fit, comma-separated (default: 1/8, 1/4, 1/2 and 1 x the default size).")] = None,
    max_seconds: Annotated[float, typer.Option(help="Fitting seconds per size.")] = 60.0,
    steps: Annotated[int | None, typer.Option(help="Fitting steps per size (instead of --max-seconds).")] = None,
    at: Annotated[str | None, typer.Option(help="Rates at which to compare with each codec, comma-separated (default: inrkit's own).")] = None,
    target_sizes: Annotated[str | None, typer.Option(help="Pack each fit at these file sizes, comma-separated (bytes, or 2.4KB, 4KiB), instead of at the default.")] = None,
    signal: Annotated[str | None, typer.Option("--signal", "-s", help="Signal type; default from the file extension.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or summary.")] = False,
) -> None:
    """Rate-distortion: fit and pack at several sizes, against the codecs the signal's plugin knows (JPEG, WebP,
    AVIF; Ogg Vorbis, Opus, FLAC)."""
    main = _main()
    with main._Guard():
        from inrkit.errors import ConfigError
        from inrkit.packjob import parse_size
        from inrkit.ratedistortion import curves, rate_distortion

        sizes = [int(p) for p in _numbers(params, "--params", int)] or None
        packed_sizes = tuple(parse_size(t) for t in target_sizes.split(",")) if target_sizes else ()
        rates = tuple(_numbers(at, "--at"))
        if steps is not None and steps < 1:
            raise ConfigError(f"--steps must be a positive whole number, got {steps}")
        with main._observed(quiet=quiet, announce=False) as host:
            result = rate_distortion(input, output, params_list=sizes, seconds=max_seconds, steps=steps,
                                     signal_name=signal, rates=rates, target_bytes=packed_sizes, host=host)
        if quiet:
            return
        rows = result["rows"]
        unit = rows[0]["rate_unit"]
        for row in (r for r in rows if r["method"] == "inrkit"):
            shown = ", ".join(f"{k} {v:.2f}" for k, v in row["metrics"].items())
            typer.echo(f"inrkit {row['setting']}: {row['bytes']:,} bytes, {row['rate']:.3f} {unit}, {shown}")
        if not rates:
            from inrkit.ratedistortion import comparison

            rates = tuple(curves(rows)["inrkit"][0])
            result["comparison"] = comparison(rows, rates)
        for method, facts in result["comparison"].items():
            parts = [f"{rate}: {d['difference']:+.2f}" for rate, d in facts["at"].items() if d["difference"] is not None]
            crossed = ", ".join(f"{c:.3f}" for c in facts["crossings"]) or "none in the common range"
            typer.echo(f"vs {method}: inrkit minus {method} at {unit} " + ("; ".join(parts) or "(no common rates)")
                       + f"; curves cross at {crossed}")
        typer.echo(f"wrote {output} and {output.with_suffix('.md')}, {output.with_suffix('.json')}")


def register(app: typer.Typer) -> None:
    """Add ``pack`` and ``rd`` to the app."""
    app.command("pack")(pack_command)
    app.command("rd")(rd_command)
