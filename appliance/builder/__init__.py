"""The build engine: turn a specification into an installed prefix and its artifacts.

No conda, mamba or micromamba binary is involved: py-rattler solves and installs, conda-lock
(as a library) writes the lockfile, conda-pack packs. The modules follow the pipeline:

- :mod:`.settings`   what a build needs to know, as one immutable value
- :mod:`.platforms`  target platforms and their virtual packages
- :mod:`.buildlog`   the build log, written step by step as the build runs
- :mod:`.solve`      specification -> records per platform
- :mod:`.lock`       records <-> conda-lock v1 lockfile
- :mod:`.install`    records -> prefix (shared package cache, hardlinks)
- :mod:`.pip`        ``pip:`` dependencies with the environment's own Python
- :mod:`.activate`   environment variables, history, the ``envs/<name>`` symlink, permissions
- :mod:`.export`     the pinned ``environment.yaml``
- :mod:`.pack`       the conda-pack archive
- :mod:`.pipeline`   the steps above in order, with artifacts stored as they are produced
"""
