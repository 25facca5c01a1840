//! Latency markers: an H.264 SEI NAL unit carrying the publisher's send time.
//!
//! Spec: ITU-T H.264 (08/2021) 7.3.2.3 (SEI RBSP), 7.3.5 (SEI message: `ff`-coded payload type
//! and size), D.1.7 / D.2.7 (`user_data_unregistered`, payload type 5: a 16-byte UUID then
//! free bytes), 7.4.1.1 (emulation prevention: `00 00 0x` with x <= 3 is escaped as
//! `00 00 03 0x`); RFC 6184 5.6 (single NAL unit packet) and 5.7.1 (STAP-A).
//!
//! The publisher puts one marker NAL in front of each picture's slices. The gateway forwards it
//! like any other non-VCL NAL, so a receiver that finds it (in an RTP packet, or in an RTMP
//! video message for an RTMP player) knows when the picture left the publisher. The marker is
//! 30 to 33 bytes, so packetizers send it as a single-NAL packet or aggregate it into a STAP-A.

use bytes::{BufMut, Bytes, BytesMut};

/// Our `user_data_unregistered` UUID (random, generated once for Sluice perf).
pub const MARKER_UUID: [u8; 16] = [
    0x5e, 0x1c, 0xe0, 0x9e, 0x7a, 0x3b, 0x4f, 0x21, 0x9c, 0x55, 0xd4, 0x0b, 0x6e, 0x83, 0x12, 0xa7,
];

/// NAL unit type of SEI (H.264 Table 7-1).
const NAL_SEI: u8 = 6;
/// SEI payload type of `user_data_unregistered` (H.264 Annex D).
const USER_DATA_UNREGISTERED: u8 = 5;
/// UUID + u64 timestamp.
const MARKER_PAYLOAD_LEN: u8 = 24;
/// Longest marker NAL after escaping: header, type, size, 24 payload bytes with at most 4
/// emulation-prevention bytes, trailing bits. Bigger SEIs are not ours and are skipped
/// without unescaping, so a hostile stream cannot make the receiver allocate.
pub const MAX_MARKER_NAL: usize = 1 + 1 + 1 + 24 + 8 + 1;

/// The marker NAL unit (no start code, no length prefix) for send time `send_ns`.
pub fn marker_nal(send_ns: u64) -> Vec<u8> {
    let mut rbsp = [0u8; 2 + MARKER_PAYLOAD_LEN as usize + 1];
    rbsp[0] = USER_DATA_UNREGISTERED;
    rbsp[1] = MARKER_PAYLOAD_LEN;
    rbsp[2..18].copy_from_slice(&MARKER_UUID);
    rbsp[18..26].copy_from_slice(&send_ns.to_be_bytes());
    rbsp[26] = 0x80; // rbsp_trailing_bits
    let mut out = Vec::with_capacity(MAX_MARKER_NAL);
    out.push(NAL_SEI); // forbidden_zero 0, nal_ref_idc 0, type 6
    let mut zeros = 0;
    for &b in &rbsp {
        if zeros >= 2 && b <= 3 {
            out.push(3);
            zeros = 0;
        }
        out.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
    out
}

/// The send time carried by `nal` if it is our marker; `None` for any other NAL unit.
pub fn parse_marker(nal: &[u8]) -> Option<u64> {
    if nal.len() > MAX_MARKER_NAL || nal.first().map(|h| h & 0x1F) != Some(NAL_SEI) {
        return None;
    }
    // Unescape into a stack buffer: the marker is small and bounded by MAX_MARKER_NAL.
    let mut rbsp = [0u8; MAX_MARKER_NAL];
    let mut n = 0;
    let mut zeros = 0;
    for &b in nal.get(1..)? {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        *rbsp.get_mut(n)? = b;
        n += 1;
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
    let rbsp = rbsp.get(..n)?;
    if rbsp.first() != Some(&USER_DATA_UNREGISTERED) || rbsp.get(1) != Some(&MARKER_PAYLOAD_LEN) {
        return None;
    }
    if rbsp.get(2..18)? != MARKER_UUID {
        return None;
    }
    let ts: [u8; 8] = rbsp.get(18..26)?.try_into().ok()?;
    Some(u64::from_be_bytes(ts))
}

/// Rewrites an FLV AVC video tag body (E.4.3.1: frame type and codec id, AVCPacketType,
/// composition time, then NAL units with `length_size`-byte prefixes) so that a marker NAL
/// for `send_ns` comes first. Sequence headers, end-of-sequence and non-AVC bodies are
/// returned unchanged (`None`).
///
/// Copies the body once into `out` (cleared first): inserting bytes in front of the NAL units
/// forces it; the caller reuses `out` to avoid an allocation per frame.
pub fn insert_into_avc_body(
    body: &[u8],
    length_size: u8,
    send_ns: u64,
    out: &mut BytesMut,
) -> bool {
    let is_avc_nalu = body.first().map(|b| b & 0x0F) == Some(7) && body.get(1) == Some(&1);
    let Some(rest) = body.get(5..) else {
        return false;
    };
    if !is_avc_nalu || !(1..=4).contains(&length_size) {
        return false;
    }
    let nal = marker_nal(send_ns);
    out.clear();
    out.reserve(body.len() + nal.len() + 4);
    out.put_slice(&body[..5]);
    out.put_uint(nal.len() as u64, usize::from(length_size));
    out.put_slice(&nal);
    out.put_slice(rest);
    true
}

/// Finds a marker in an FLV AVC video tag body (as an RTMP player receives it).
pub fn find_in_avc_body(body: &[u8], length_size: u8) -> Option<u64> {
    if body.first().map(|b| b & 0x0F) != Some(7) || body.get(1) != Some(&1) {
        return None;
    }
    let ls = usize::from(length_size);
    if !(1..=4).contains(&ls) {
        return None;
    }
    let mut rest = body.get(5..)?;
    while !rest.is_empty() {
        let len = rest
            .get(..ls)?
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        let nal = rest.get(ls..ls.checked_add(len)?)?;
        if let Some(t) = parse_marker(nal) {
            return Some(t);
        }
        rest = rest.get(ls + len..)?;
    }
    None
}

/// Finds a marker in an H.264 RTP payload: a single NAL unit packet or a STAP-A.
pub fn find_in_rtp_payload(payload: &[u8]) -> Option<u64> {
    match payload.first()? & 0x1F {
        24 => {
            // STAP-A: header byte, then (16-bit size, NAL) pairs.
            let mut rest = payload.get(1..)?;
            while rest.len() >= 2 {
                let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                let nal = rest.get(2..2 + len)?;
                if let Some(t) = parse_marker(nal) {
                    return Some(t);
                }
                rest = rest.get(2 + len..)?;
            }
            None
        }
        NAL_SEI => parse_marker(payload),
        _ => None,
    }
}

/// Finds a marker in an Annex-B access unit (what a WebRTC receiver depacketizes): looks at
/// the NAL units before the first slice (the marker is put in front of the slices).
pub fn find_in_annexb(au: &[u8]) -> Option<u64> {
    let mut starts = Vec::with_capacity(8);
    let mut i = 0;
    // Start codes of the NAL units up to the first slice; never more than 8 looked at.
    while i + 3 <= au.len() && starts.len() < 8 {
        if au[i] == 0 && au[i + 1] == 0 && au[i + 2] == 1 {
            let at = i + 3;
            starts.push(at);
            if matches!(au.get(at).map(|h| h & 0x1F), Some(1 | 5)) {
                break;
            }
            i = at;
        } else {
            i += 1;
        }
    }
    for (k, &at) in starts.iter().enumerate() {
        // A NAL ends where the next start code (and its leading zero, if 4 bytes) begins.
        let end = starts.get(k + 1).map_or(au.len(), |&n| n.saturating_sub(3));
        let mut nal = au.get(at..end.max(at))?;
        while nal.last() == Some(&0) {
            nal = &nal[..nal.len() - 1];
        }
        if let Some(t) = parse_marker(nal) {
            return Some(t);
        }
    }
    None
}

/// The NALU length size (1, 2 or 4) from an FLV AVC sequence header body
/// (`AVCDecoderConfigurationRecord`, ISO/IEC 14496-15 5.3.3.1), if `body` is one.
pub fn avc_length_size(body: &Bytes) -> Option<u8> {
    if body.first().map(|b| b & 0x0F) != Some(7) || body.get(1) != Some(&0) {
        return None;
    }
    body.get(5 + 4).map(|b| (b & 0x03) + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn marker_found_in_annexb_access_unit() {
        let mut au = vec![0, 0, 0, 1, 0x09, 0xF0]; // AUD, 4-byte start code
        au.extend_from_slice(&[0, 0, 1]);
        au.extend_from_slice(&marker_nal(0x0102_0000_0000_0304));
        au.extend_from_slice(&[0, 0, 0, 1, 0x65, 0x88, 0, 0, 1, 0x41]); // IDR slice
        assert_eq!(find_in_annexb(&au), Some(0x0102_0000_0000_0304));
        // No marker, or a marker after the first slice: none.
        assert_eq!(find_in_annexb(&[0, 0, 1, 0x65, 1, 2, 3]), None);
        let mut late = vec![0, 0, 1, 0x65, 1];
        late.extend_from_slice(&[0, 0, 1]);
        late.extend_from_slice(&marker_nal(5));
        assert_eq!(find_in_annexb(&late), None);
        assert_eq!(find_in_annexb(&[0, 0]), None);
    }

    #[test]
    fn marker_round_trip_plain() {
        let nal = marker_nal(0x0102_0304_0506_0708);
        assert_eq!(nal[0], 6);
        assert_eq!(nal.len(), 1 + 2 + 24 + 1);
        assert_eq!(parse_marker(&nal), Some(0x0102_0304_0506_0708));
    }

    #[test]
    fn marker_escapes_zero_runs() {
        // 00 00 00 01 in the timestamp must be escaped.
        let nal = marker_nal(0x0000_0001_0000_0000);
        assert!(
            nal.windows(3)
                .all(|w| !(w[0] == 0 && w[1] == 0 && w[2] <= 2))
        );
        assert!(nal.len() > 28);
        assert!(nal.len() <= MAX_MARKER_NAL);
        assert_eq!(parse_marker(&nal), Some(0x0000_0001_0000_0000));
    }

    #[test]
    fn foreign_sei_and_slices_rejected() {
        let mut nal = marker_nal(5);
        nal[5] ^= 0xFF; // UUID byte
        assert_eq!(parse_marker(&nal), None);
        assert_eq!(parse_marker(&[0x65, 0x88, 0x84]), None);
        assert_eq!(parse_marker(&[]), None);
        assert_eq!(parse_marker(&marker_nal(5)[..10]), None);
    }

    #[test]
    fn avc_body_insert_and_find() {
        let body = [0x17, 1, 0, 0, 0, 0, 0, 0, 3, 0x65, 0xAA, 0xBB];
        let mut out = BytesMut::new();
        assert!(insert_into_avc_body(&body, 4, 777, &mut out));
        assert_eq!(&out[..5], &body[..5]);
        assert_eq!(&out[out.len() - 7..], &body[5..]);
        assert_eq!(find_in_avc_body(&out, 4), Some(777));
        assert_eq!(find_in_avc_body(&body, 4), None);
        // A sequence header is left alone.
        assert!(!insert_into_avc_body(
            &[0x17, 0, 0, 0, 0, 1],
            4,
            1,
            &mut out
        ));
        // A truncated slice after the marker still finds it; a truncated marker is no marker.
        assert_eq!(find_in_avc_body(&out[..out.len() - 3], 4), Some(777));
        assert_eq!(find_in_avc_body(&out[..20], 4), None);
        assert_eq!(find_in_avc_body(&out[..8], 4), None);
    }

    #[test]
    fn rtp_single_and_stap_a() {
        let nal = marker_nal(42);
        assert_eq!(find_in_rtp_payload(&nal), Some(42));
        let sps = [0x67, 0x42, 0x00, 0x1F];
        let mut stap = vec![24];
        for n in [&sps[..], &nal[..]] {
            stap.extend_from_slice(&(n.len() as u16).to_be_bytes());
            stap.extend_from_slice(n);
        }
        assert_eq!(find_in_rtp_payload(&stap), Some(42));
        assert_eq!(find_in_rtp_payload(&stap[..stap.len() - 1]), None);
        assert_eq!(find_in_rtp_payload(&[0x7C, 0x85, 1, 2]), None); // FU-A
    }

    #[test]
    fn length_size_from_sequence_header() {
        let body = Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1F, 0xFF, 0xE1]);
        assert_eq!(avc_length_size(&body), Some(4));
        assert_eq!(avc_length_size(&Bytes::from_static(&[0x17, 1])), None);
    }

    proptest! {
        #[test]
        fn any_timestamp_round_trips(ts: u64) {
            let nal = marker_nal(ts);
            prop_assert!(nal.len() <= MAX_MARKER_NAL);
            prop_assert_eq!(parse_marker(&nal), Some(ts));
        }

        #[test]
        fn arbitrary_bytes_never_panic(data: Vec<u8>) {
            let _ = find_in_rtp_payload(&data);
            let _ = find_in_avc_body(&data, 4);
            let _ = parse_marker(&data);
        }
    }
}
