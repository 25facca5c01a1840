//! AMF0 (Action Message Format 0) values: decode and encode, as used by RTMP commands.
