//! SDP for RTP forwarding.
