"""``python -m convection ...`` is the ``convection`` command."""

from convection.cli.main import main

main()
