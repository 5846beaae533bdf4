"""Kiln: a self-hosted conda environment store in one executable.

The ``appliance`` package is the server side (CLI, engine, storage, configuration);
``tui`` is the admin console. See DESIGN.md for the layers.
"""

__version__ = "0.1.0"
