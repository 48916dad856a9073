"""The ``distilgate`` command line."""
