"""Local conda channels: Kiln's own package writer, the demo channel and the indexer.

- :mod:`appliance.channels.package` writes ``.conda`` and ``.tar.bz2`` packages, byte-reproducibly;
- :mod:`appliance.channels.demo` writes the indexed ``kiln-demo-*`` channel (``kiln channel demo``);
- :mod:`appliance.channels.index` checks and indexes a channel directory (``kiln channel index``).
"""
