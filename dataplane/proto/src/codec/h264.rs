//! H.264 / AVC bitstream fields (ITU-T H.264 (08/2021)): the NAL unit header (§7.3.1), the
//! sequence parameter set with its VUI (§7.3.2.1.1, Annex E.1.1), the PPS ids (§7.3.2.2) and
//! the first fields of a slice header (§7.3.3).
//!
//! Parsers read the NAL unit in place, dropping emulation prevention bytes as they go; they
//! read only as far as the fields Sluice needs.

use super::bits::{BitError, BitReader};

/// H.264 NAL unit types Sluice acts on (Table 7-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NalType {
    /// 1: coded slice of a non-IDR picture.
    Slice,
    /// 5: coded slice of an IDR picture.
    Idr,
    /// 6: supplemental enhancement information.
    Sei,
    /// 7: sequence parameter set.
    Sps,
    /// 8: picture parameter set.
    Pps,
    /// 9: access unit delimiter.
    Aud,
    /// 12: filler data.
    Filler,
    /// 24: STAP-A aggregation packet (RFC 6184; never in a byte stream).
    StapA,
    /// 28: FU-A fragmentation unit (RFC 6184; never in a byte stream).
    FuA,
    /// Any other type.
    Other(u8),
}

impl NalType {
    /// Classifies a 5-bit `nal_unit_type`.
    pub fn from_u8(t: u8) -> Self {
        match t & 0x1f {
            1 => Self::Slice,
            5 => Self::Idr,
            6 => Self::Sei,
            7 => Self::Sps,
            8 => Self::Pps,
            9 => Self::Aud,
            12 => Self::Filler,
            24 => Self::StapA,
            28 => Self::FuA,
            t => Self::Other(t),
        }
    }

    /// The numeric `nal_unit_type`.
    pub fn as_u8(self) -> u8 {
        match self {
            Self::Slice => 1,
            Self::Idr => 5,
            Self::Sei => 6,
            Self::Sps => 7,
            Self::Pps => 8,
            Self::Aud => 9,
            Self::Filler => 12,
            Self::StapA => 24,
            Self::FuA => 28,
            Self::Other(t) => t,
        }
    }

    /// True for coded slice NAL units (types 1 to 5).
    pub fn is_vcl(self) -> bool {
        (1..=5).contains(&self.as_u8())
    }
}

/// The one-byte NAL unit header (§7.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NalHeader {
    /// `forbidden_zero_bit`.
    pub forbidden_zero_bit: bool,
    /// `nal_ref_idc` (0..=3).
    pub nal_ref_idc: u8,
    /// `nal_unit_type`.
    pub nal_type: NalType,
}

impl NalHeader {
    /// Reads the header from the first byte of a NAL unit; `None` for an empty unit.
    pub fn parse(nal: &[u8]) -> Option<Self> {
        let b = *nal.first()?;
        Some(Self {
            forbidden_zero_bit: b & 0x80 != 0,
            nal_ref_idc: (b >> 5) & 3,
            nal_type: NalType::from_u8(b & 0x1f),
        })
    }
}

/// The NAL unit type of a NAL unit, if it is not empty.
pub fn nal_type(nal: &[u8]) -> Option<NalType> {
    NalHeader::parse(nal).map(|h| h.nal_type)
}

/// True when the NAL units contain an IDR slice (type 5): a decoder can start here.
pub fn is_keyframe<'a>(nalus: impl IntoIterator<Item = &'a [u8]>) -> bool {
    nalus.into_iter().any(|n| nal_type(n) == Some(NalType::Idr))
}

/// `profile_idc` values whose SPS carries chroma format, bit depth and scaling lists
/// (§7.3.2.1.1).
const HIGH_PROFILES: [u8; 13] = [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135];

/// Largest `num_ref_frames_in_pic_order_cnt_cycle` (§7.4.2.1.1); bounds a loop.
const MAX_POC_CYCLE: u32 = 255;
/// Largest `cpb_cnt_minus1` (Annex E.2.2); bounds a loop.
const MAX_CPB_CNT_MINUS1: u32 = 31;

/// The sequence parameter set fields Sluice uses (§7.3.2.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sps {
    /// `profile_idc` (66 Baseline, 77 Main, 100 High, ...).
    pub profile_idc: u8,
    /// The byte of `constraint_set0_flag`..`constraint_set5_flag` and the two reserved bits, as
    /// used in `profile-level-id`.
    pub constraint_flags: u8,
    /// `level_idc` (ten times the level number).
    pub level_idc: u8,
    /// `seq_parameter_set_id` (0..=31).
    pub id: u8,
    /// `chroma_format_idc` (1 = 4:2:0 when absent).
    pub chroma_format_idc: u8,
    /// `separate_colour_plane_flag`.
    pub separate_colour_plane: bool,
    /// Luma bit depth (`bit_depth_luma_minus8 + 8`).
    pub bit_depth_luma: u8,
    /// Chroma bit depth.
    pub bit_depth_chroma: u8,
    /// `log2_max_frame_num_minus4 + 4`, needed to parse slice headers.
    pub log2_max_frame_num: u8,
    /// `pic_order_cnt_type`.
    pub pic_order_cnt_type: u8,
    /// `max_num_ref_frames`.
    pub max_num_ref_frames: u32,
    /// `frame_mbs_only_flag`: false for interlaced coding.
    pub frame_mbs_only: bool,
    /// Display width in luma samples, after frame cropping.
    pub width: u32,
    /// Display height in luma samples, after frame cropping.
    pub height: u32,
    /// VUI `num_units_in_tick` and `time_scale`, when the timing info is present.
    pub timing: Option<(u32, u32)>,
    /// VUI `fixed_frame_rate_flag`.
    pub fixed_frame_rate: bool,
    /// VUI `max_num_reorder_frames`, when the bitstream restriction is present: 0 means no
    /// B-frame reordering.
    pub max_num_reorder_frames: Option<u32>,
}

impl Sps {
    /// Parses an SPS NAL unit (with its one-byte header, without start code).
    ///
    /// Errors in the VUI after the timing info are tolerated (some encoders truncate it): the
    /// fields read so far are kept.
    pub fn parse(nal: &[u8]) -> Result<Self, BitError> {
        let t = *nal.first().ok_or(BitError::Truncated)? & 0x1f;
        if t != 7 {
            return Err(BitError::WrongNalType(t));
        }
        let mut r = BitReader::rbsp(nal.get(1..).unwrap_or_default());
        let profile_idc = r.u8(8)?;
        let constraint_flags = r.u8(8)?;
        let level_idc = r.u8(8)?;
        let id = r.ue_max(31, "seq_parameter_set_id")? as u8;
        let mut chroma_format_idc = 1;
        let mut separate_colour_plane = false;
        let mut bit_depth_luma = 8;
        let mut bit_depth_chroma = 8;
        if HIGH_PROFILES.contains(&profile_idc) {
            chroma_format_idc = r.ue_max(3, "chroma_format_idc")? as u8;
            if chroma_format_idc == 3 {
                separate_colour_plane = r.bit()?;
            }
            bit_depth_luma = 8 + r.ue_max(6, "bit_depth_luma_minus8")? as u8;
            bit_depth_chroma = 8 + r.ue_max(6, "bit_depth_chroma_minus8")? as u8;
            r.bit()?; // qpprime_y_zero_transform_bypass_flag
            if r.bit()? {
                let lists = if chroma_format_idc == 3 { 12 } else { 8 };
                for i in 0..lists {
                    if r.bit()? {
                        skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                    }
                }
            }
        }
        let log2_max_frame_num = 4 + r.ue_max(12, "log2_max_frame_num_minus4")? as u8;
        let pic_order_cnt_type = r.ue_max(2, "pic_order_cnt_type")? as u8;
        match pic_order_cnt_type {
            0 => {
                r.ue_max(12, "log2_max_pic_order_cnt_lsb_minus4")?;
            }
            1 => {
                r.bit()?; // delta_pic_order_always_zero_flag
                r.se()?; // offset_for_non_ref_pic
                r.se()?; // offset_for_top_to_bottom_field
                let n = r.ue_max(MAX_POC_CYCLE, "num_ref_frames_in_pic_order_cnt_cycle")?;
                for _ in 0..n {
                    r.se()?;
                }
            }
            _ => {}
        }
        let max_num_ref_frames = r.ue()?;
        r.bit()?; // gaps_in_frame_num_value_allowed_flag
        // Bounded so that width/height arithmetic below cannot overflow u32.
        let width_mbs = u64::from(r.ue_max(1 << 16, "pic_width_in_mbs_minus1")?) + 1;
        let height_units = u64::from(r.ue_max(1 << 16, "pic_height_in_map_units_minus1")?) + 1;
        let frame_mbs_only = r.bit()?;
        if !frame_mbs_only {
            r.bit()?; // mb_adaptive_frame_field_flag
        }
        r.bit()?; // direct_8x8_inference_flag
        let mut crop = [0u64; 4];
        if r.bit()? {
            for c in &mut crop {
                *c = u64::from(r.ue()?);
            }
        }
        // Table 6-1 and equations 7-19..7-22.
        let chroma_array_type = if separate_colour_plane {
            0
        } else {
            chroma_format_idc
        };
        let field_factor = if frame_mbs_only { 1 } else { 2 };
        let (crop_x, crop_y) = match chroma_array_type {
            0 => (1, field_factor),
            1 => (2, 2 * field_factor),
            2 => (2, field_factor),
            _ => (1, field_factor),
        };
        let full_w = width_mbs * 16;
        let full_h = height_units * 16 * field_factor;
        let width = full_w
            .checked_sub(crop_x * (crop[0] + crop[1]))
            .ok_or(BitError::OutOfRange("frame_crop_left/right_offset"))?;
        let height = full_h
            .checked_sub(crop_y * (crop[2] + crop[3]))
            .ok_or(BitError::OutOfRange("frame_crop_top/bottom_offset"))?;
        let mut sps = Sps {
            profile_idc,
            constraint_flags,
            level_idc,
            id,
            chroma_format_idc,
            separate_colour_plane,
            bit_depth_luma,
            bit_depth_chroma,
            log2_max_frame_num,
            pic_order_cnt_type,
            max_num_ref_frames,
            frame_mbs_only,
            // Both are at most 2^16 * 32 after the caps above.
            width: width as u32,
            height: height as u32,
            timing: None,
            fixed_frame_rate: false,
            max_num_reorder_frames: None,
        };
        if r.bit()? {
            let _ = sps.parse_vui(&mut r);
        }
        Ok(sps)
    }

    /// Annex E.1.1; stops at the first error, keeping what it read.
    fn parse_vui(&mut self, r: &mut BitReader<'_>) -> Result<(), BitError> {
        if r.bit()? && r.u8(8)? == 255 {
            r.skip(32)?; // sar_width, sar_height
        }
        if r.bit()? {
            r.bit()?; // overscan_appropriate_flag
        }
        if r.bit()? {
            r.skip(4)?; // video_format, video_full_range_flag
            if r.bit()? {
                r.skip(24)?; // colour_primaries, transfer, matrix
            }
        }
        if r.bit()? {
            r.ue()?;
            r.ue()?;
        }
        if r.bit()? {
            let num_units_in_tick = r.bits(32)?;
            let time_scale = r.bits(32)?;
            self.fixed_frame_rate = r.bit()?;
            self.timing = Some((num_units_in_tick, time_scale));
        }
        let nal_hrd = r.bit()?;
        if nal_hrd {
            skip_hrd(r)?;
        }
        let vcl_hrd = r.bit()?;
        if vcl_hrd {
            skip_hrd(r)?;
        }
        if nal_hrd || vcl_hrd {
            r.bit()?; // low_delay_hrd_flag
        }
        r.bit()?; // pic_struct_present_flag
        if r.bit()? {
            r.bit()?; // motion_vectors_over_pic_boundaries_flag
            for _ in 0..4 {
                r.ue()?;
            }
            self.max_num_reorder_frames = Some(r.ue()?);
            r.ue()?; // max_dec_frame_buffering
        }
        Ok(())
    }

    /// Frames per second as a reduced fraction, from the VUI timing info: one frame is two
    /// ticks (a tick is a field period, Annex E.2.1 equation E-6 with `field_pic_flag` 0).
    pub fn frame_rate(&self) -> Option<(u32, u32)> {
        let (units, scale) = self.timing?;
        super::reduce_fraction(u64::from(scale), 2 * u64::from(units))
    }
}

/// Skips `scaling_list()` (§7.3.2.1.1.1).
fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), BitError> {
    let mut last = 8i32;
    let mut next = 8i32;
    for _ in 0..size {
        if next != 0 {
            let delta = r.se()?;
            if !(-128..=127).contains(&delta) {
                return Err(BitError::OutOfRange("delta_scale"));
            }
            next = (last + delta + 256) % 256;
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

/// Skips `hrd_parameters()` (Annex E.1.2).
fn skip_hrd(r: &mut BitReader<'_>) -> Result<(), BitError> {
    let cpb_cnt = r.ue_max(MAX_CPB_CNT_MINUS1, "cpb_cnt_minus1")? + 1;
    r.skip(8)?; // bit_rate_scale, cpb_size_scale
    for _ in 0..cpb_cnt {
        r.ue()?;
        r.ue()?;
        r.bit()?;
    }
    r.skip(20) // four delay lengths
}

/// The ids at the start of a picture parameter set (§7.3.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pps {
    /// `pic_parameter_set_id` (0..=255).
    pub id: u8,
    /// `seq_parameter_set_id` of the SPS it refers to (0..=31).
    pub sps_id: u8,
}

impl Pps {
    /// Parses the ids of a PPS NAL unit (with header).
    pub fn parse(nal: &[u8]) -> Result<Self, BitError> {
        let t = *nal.first().ok_or(BitError::Truncated)? & 0x1f;
        if t != 8 {
            return Err(BitError::WrongNalType(t));
        }
        let mut r = BitReader::rbsp(nal.get(1..).unwrap_or_default());
        Ok(Self {
            id: r.ue_max(255, "pic_parameter_set_id")? as u8,
            sps_id: r.ue_max(31, "seq_parameter_set_id")? as u8,
        })
    }
}

/// Slice types (Table 7-6), with the "all slices of the picture" variants 5..=9 folded in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SliceType {
    /// P slice.
    P,
    /// B slice: the picture may be displayed after later-decoded ones.
    B,
    /// I slice.
    I,
    /// SP slice.
    Sp,
    /// SI slice.
    Si,
}

/// The first fields of a slice header (§7.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SliceHeader {
    /// `first_mb_in_slice`: 0 for the first slice of a picture.
    pub first_mb_in_slice: u32,
    /// `slice_type`.
    pub slice_type: SliceType,
    /// `pic_parameter_set_id`.
    pub pps_id: u8,
}

impl SliceHeader {
    /// Parses the start of a coded slice NAL unit (types 1..=5, with header).
    pub fn parse(nal: &[u8]) -> Result<Self, BitError> {
        let t = *nal.first().ok_or(BitError::Truncated)? & 0x1f;
        if !(1..=5).contains(&t) {
            return Err(BitError::WrongNalType(t));
        }
        let mut r = BitReader::rbsp(nal.get(1..).unwrap_or_default());
        let first_mb_in_slice = r.ue()?;
        let slice_type = match r.ue_max(9, "slice_type")? % 5 {
            0 => SliceType::P,
            1 => SliceType::B,
            2 => SliceType::I,
            3 => SliceType::Sp,
            _ => SliceType::Si,
        };
        let pps_id = r.ue_max(255, "pic_parameter_set_id")? as u8;
        Ok(Self {
            first_mb_in_slice,
            slice_type,
            pps_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // ffmpeg/libx264, High profile 4:2:0, 1280x720 at 30 fps (VUI timing 1/60), B-frames.
    const SPS_720P: &[u8] = &[
        0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03,
        0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x19, 0x60,
    ];

    // ffmpeg/libx264, Constrained Baseline, 320x240 at 25 fps, no B-frames.
    const SPS_BASELINE: &[u8] = &[
        0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
        0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0xa4, 0x80,
    ];

    // ffmpeg/libx264, Main profile, 1920x1080 (1088 coded, cropped) at 30000/1001 fps.
    const SPS_1080P: &[u8] = &[
        0x67, 0x4d, 0x40, 0x28, 0xec, 0xa0, 0x3c, 0x01, 0x13, 0xf2, 0xe0, 0x22, 0x00, 0x00, 0x07,
        0xd2, 0x00, 0x01, 0xd4, 0xc0, 0x1e, 0x30, 0x63, 0x2c,
    ];

    /// libx264 SPSs covering scaling matrices (cqm=jvt), 4:4:4 and 4:2:2 cropping and
    /// interlaced (field) coding, with what ffprobe reports for each stream.
    #[test]
    fn parses_profile_and_layout_variants() {
        // (SPS, profile_idc, chroma_format_idc, width, height, frame rate)
        type Case = (&'static [u8], u8, u8, u32, u32, (u32, u32));
        let cases: [Case; 4] = [
            (
                &[
                    0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00,
                    0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x64, 0x0f, 0x18, 0x31, 0x96,
                ],
                100,
                1,
                640,
                360,
                (50, 1),
            ),
            (
                &[
                    0x67, 0xf4, 0x00, 0x0d, 0x91, 0x9b, 0x28, 0x2c, 0x12, 0xf7, 0x78, 0x08, 0x80,
                    0x00, 0x00, 0x03, 0x00, 0x80, 0x00, 0x00, 0x18, 0x07, 0x8a, 0x14, 0xcb,
                ],
                244,
                3,
                350,
                286,
                (24, 1),
            ),
            (
                &[
                    0x67, 0x7a, 0x00, 0x15, 0xbc, 0xd9, 0x41, 0x61, 0xbf, 0x89, 0xc0, 0x44, 0x00,
                    0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x01, 0xe0, 0x3c, 0x58, 0xb6, 0x58,
                ],
                122,
                2,
                352,
                200,
                (60, 1),
            ),
            (
                &[
                    0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xb4, 0x24, 0xd8, 0x08, 0x80, 0x00,
                    0x00, 0x03, 0x00, 0x80, 0x00, 0x00, 0x19, 0x0f, 0x8a, 0x14, 0xcb,
                ],
                100,
                1,
                720,
                576,
                (25, 1),
            ),
        ];
        for (nal, profile, chroma, w, h, fps) in cases {
            let s = Sps::parse(nal).unwrap();
            assert_eq!(s.profile_idc, profile);
            assert_eq!(s.chroma_format_idc, chroma);
            assert_eq!((s.width, s.height), (w, h), "profile {profile}");
            assert_eq!(s.frame_rate(), Some(fps), "profile {profile}");
        }
        assert!(!Sps::parse(cases[3].0).unwrap().frame_mbs_only);
    }

    #[test]
    fn parses_cropped_ntsc_rate_sps() {
        let s = Sps::parse(SPS_1080P).unwrap();
        assert_eq!(
            (s.profile_idc, s.constraint_flags, s.level_idc),
            (77, 0x40, 40)
        );
        assert_eq!((s.width, s.height), (1920, 1080));
        assert_eq!(s.frame_rate(), Some((30_000, 1_001)));
    }

    #[test]
    fn parses_high_profile_sps_with_vui() {
        let s = Sps::parse(SPS_720P).unwrap();
        assert_eq!(
            (s.profile_idc, s.constraint_flags, s.level_idc),
            (100, 0, 31)
        );
        assert_eq!((s.width, s.height), (1280, 720));
        assert_eq!(s.chroma_format_idc, 1);
        assert_eq!(s.timing, Some((1, 60)));
        assert_eq!(s.frame_rate(), Some((30, 1)));
        assert_eq!(s.max_num_reorder_frames, Some(2));
    }

    #[test]
    fn parses_baseline_sps() {
        let s = Sps::parse(SPS_BASELINE).unwrap();
        assert_eq!(
            (s.profile_idc, s.constraint_flags, s.level_idc),
            (66, 0xc0, 13)
        );
        assert_eq!((s.width, s.height), (320, 240));
        assert_eq!(s.frame_rate(), Some((25, 1)));
        assert_eq!(s.max_num_reorder_frames, Some(0));
    }

    #[test]
    fn rejects_truncated_and_wrong_type() {
        // The fields before the VUI end in byte 8; the VUI is best effort.
        for n in 0..8 {
            assert!(Sps::parse(&SPS_BASELINE[..n]).is_err(), "prefix {n}");
        }
        assert_eq!(Sps::parse(&[0x68, 0xce]), Err(BitError::WrongNalType(8)));
    }

    #[test]
    fn pps_and_slice_header() {
        assert_eq!(
            Pps::parse(&[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0]).unwrap(),
            Pps { id: 0, sps_id: 0 }
        );
        // first_mb 0 (1), slice_type 7 = I (0001000), pps 0 (1)
        let idr = [0x65, 0b1000_1000, 0b1000_0000];
        let h = SliceHeader::parse(&idr).unwrap();
        assert_eq!((h.first_mb_in_slice, h.slice_type), (0, SliceType::I));
        // first_mb 1 (010), slice_type 1 = B (010), pps 0 (1)
        let b = [0x01, 0b0100_1010];
        assert_eq!(SliceHeader::parse(&b).unwrap().slice_type, SliceType::B);
        assert!(SliceHeader::parse(&[0x67, 0x80]).is_err());
        assert!(is_keyframe([&[0x09, 0xf0][..], &idr[..]]));
        assert!(!is_keyframe([&b[..]]));
    }
}
