"""Demo stages, run in file-name order by demo.py (``sNN_<name>.py`` with ``TITLE`` and ``run(ctx)``)."""
