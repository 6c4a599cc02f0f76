"""`python -m bot`: runs the command line in `launcher`, which wires the adapters to the core.

This file is the command's name only: the core's modules never import an adapter.
"""

from launcher.cli import main

main()
