"""``python -m cloudstore``: the same as the ``cloudstore`` command."""

from cloudstore.cli import main

main()
