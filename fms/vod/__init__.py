"""Recorded streams without Twisted: FLV files written tag by tag, their ``onMetaData``
(duration, file size, keyframe index) made and repaired after a crash, and read back for
playback. Time is an argument; the edges own the files' I/O scheduling."""
