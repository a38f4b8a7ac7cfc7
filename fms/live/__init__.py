"""Live streams without Twisted: the registry, each stream's caches and shared logs, and what
the server reads of FLV audio/video payloads. Time is an argument; viewers are reached through
small protocols (:class:`~fms.live.stream.PlayerSink`), never through sockets."""
