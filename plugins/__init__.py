"""Application plugins shipped with pyFMS, importable as ``fms.plugins``.

The top-level ``plugins/`` folder is what operators browse; ``fms/plugins`` is a symbolic link
to it so that the same files are installed with the package and named in a configuration by
their entry point (``use = "streamkey"``).
"""
