//! MPEG-TS: 188-byte packets, PSI tables, PES reassembly and the demuxer to access units.
