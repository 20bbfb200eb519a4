"""The ``inrkit`` command line (typer). The only layer that prints or exits."""
