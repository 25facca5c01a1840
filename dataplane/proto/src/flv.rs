//! FLV tag bodies as carried in RTMP audio, video and data messages (legacy and Enhanced RTMP).
