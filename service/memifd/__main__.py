"""``python -m memifd``: the same as the ``memifd`` command."""

from memifd.cli import main

main()
