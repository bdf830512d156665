"""Floor 5: the `gyre` command line, a thin layer over :class:`gyre.Workspace`."""
