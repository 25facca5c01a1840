//! Codec bitstream helpers: Annex-B scanning, parameter sets, AAC and Opus headers.
