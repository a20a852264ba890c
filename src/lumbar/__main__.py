"""``python -m lumbar``: the same as the ``lumbar`` command."""

from lumbar.cli import main

main()
