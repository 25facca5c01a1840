//! SRT: packet formats, handshake, stream-id grammar, receiver and encryption.
