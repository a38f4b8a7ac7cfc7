"""HLS without Twisted: the muxers (CMAF/fragmented MP4, MPEG-TS) that turn a live stream's
FLV-payload messages into segments and parts, and the playlists that list them. Time is an
argument; the HTTP edge (``fms.http``) serves what this room makes."""
