"""The HTTP listener: a JSON API under ``/api/v1``, Prometheus metrics at ``/metrics`` and the
dashboard page at ``/``, on the same reactor as RTMP (see ``docs/architecture.md``)."""
