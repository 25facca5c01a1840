//! RTP packetizers (H.264, H.265, Opus, AAC) and SDP generation.
