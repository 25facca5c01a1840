//! RTMP: handshake, chunk streams, messages and the publisher-side session.
