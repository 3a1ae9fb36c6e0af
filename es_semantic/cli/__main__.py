"""``python -m es_semantic.cli``: the same as the ``es-semantic`` command."""

from es_semantic.cli import main

main()
