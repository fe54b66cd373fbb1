"""``python -m drum`` runs the ``drum`` command line."""

from drum.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
