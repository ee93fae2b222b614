"""``python -m protect`` runs the command line, exactly as the ``protect`` command does."""

from .cli import main

if __name__ == "__main__":
    main()
