"""Sub-commands of the ``volsal`` command line, one module each."""
