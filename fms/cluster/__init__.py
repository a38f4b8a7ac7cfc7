"""More than one process: the worker supervisor (``fms run --workers N``) and the relay that
makes a stream published on one worker play from every worker."""
