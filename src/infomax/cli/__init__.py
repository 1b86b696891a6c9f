"""The ``infomax`` command-line interface."""
