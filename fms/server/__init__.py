"""The Twisted edge for RTMP and RTMPS: the protocol per connection, the factory that holds
what connections share, admission, delivery to players, listening endpoints and the service
tree. The only RTMP code that touches sockets."""
