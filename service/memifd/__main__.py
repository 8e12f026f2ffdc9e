"""``python -m memifd``: the same as the ``memifd`` command."""

from memifd.cli.serve import main

main()
