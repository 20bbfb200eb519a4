"""``inrkit mesh``: the SDF plugin's own command (registered through ``inrkit_register_commands``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from inrkit.plugin import ConfigError

#: Mesh files ``inrkit mesh`` writes (the field on a grid is ``inrkit export -o x.npy``).
MESH_SUFFIXES = (".ply", ".obj", ".stl", ".glb")


def mesh_command(
    run: Annotated[Path, typer.Argument(help="Run directory of an SDF fit (`inrkit fit --signal sdf`).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Mesh file to write: .ply, .obj, .stl or .glb.")],
    resolution: Annotated[int, typer.Option(help="Marching-cubes grid points per axis (e.g. 128, 256, 512).")] = 256,
    level: Annotated[float, typer.Option(help="Iso-level of the surface, in the input's distance units.")] = 0.0,
    smooth: Annotated[int, typer.Option(help="Taubin smoothing iterations (0: none).")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
) -> None:
    """Extract a mesh from a fitted signed distance field, in the input's original coordinates."""
    from inrkit.plugin import export_run, run_signal_type  # here, not at the top: `inrkit --help` imports no torch

    kind = run_signal_type(run)
    if kind != "sdf":
        raise ConfigError(f"{run} holds a {kind!r} fit, not an SDF; `inrkit mesh` needs a run of `inrkit fit --signal sdf`")
    if output.suffix.lower() not in MESH_SUFFIXES:
        raise ConfigError(f"-o {output} must end in .ply, .obj, .stl or .glb "
                          "(for the field on a grid use `inrkit export -o x.npy`)")
    facts = export_run(run, output, options={"level": level, "smooth": smooth}, resolution=[resolution] * 3,
                       device=device)
    shown = [f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}" for key, value in facts.items()]
    typer.echo(f"wrote {output}" + (f" ({', '.join(shown)})" if shown else ""))
