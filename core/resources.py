"""The machine's resources, for refusing an input before loading it rather than running out of memory later."""

from __future__ import annotations

import os

from inrkit.errors import InputError

#: Share of the machine's memory one signal's samples may take when first read: fitting keeps several copies
#: (the values, the cached input layer, activations, the reconstruction).
MEMORY_SHARE = 0.125


def physical_memory() -> int:
    """Physical memory of this machine in bytes (a very large number where it cannot be read)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def check_fits_in_memory(need: int, what: str, remedy: str) -> None:
    """Raise :class:`InputError` when ``need`` bytes exceed this machine's share for one input.

    ``what`` names the input and its size ("photo.png: 30000x20000 pixels x 3 channels"), ``remedy`` says
    what to do ("downscale it"). Loaders call it with the size their file's header claims, before reading.
    """
    allowed = int(physical_memory() * MEMORY_SHARE)
    if need > allowed:
        raise InputError(f"{what} need {need / 2**30:.1f} GiB as numbers, and fitting keeps several copies "
                         f"(at most {allowed / 2**30:.1f} GiB for one input on this machine); {remedy}")


__all__ = ["MEMORY_SHARE", "check_fits_in_memory", "physical_memory"]
