//! H.265 / HEVC bitstream fields (ITU-T H.265 (08/2021)): the two-byte NAL unit header
//! (§7.3.1.2), profile_tier_level (§7.3.3), the sequence parameter set up to its VUI timing
//! info (§7.3.2.2.1, Annex E.2.1), the start of the PPS (§7.3.2.3.1) and of a slice segment
//! header (§7.3.6.1).
//!
//! Like [`super::h264`], parsers read in place and drop emulation prevention bytes on the fly.

use super::bits::{BitError, BitReader};

/// `nal_unit_type` of a video parameter set.
pub const NAL_VPS: u8 = 32;
/// `nal_unit_type` of a sequence parameter set.
pub const NAL_SPS: u8 = 33;
/// `nal_unit_type` of a picture parameter set.
pub const NAL_PPS: u8 = 34;
/// `nal_unit_type` of an access unit delimiter.
pub const NAL_AUD: u8 = 35;
/// `nal_unit_type` of a prefix SEI.
pub const NAL_SEI_PREFIX: u8 = 39;
/// `nal_unit_type` of a suffix SEI.
pub const NAL_SEI_SUFFIX: u8 = 40;
/// RFC 7798 aggregation packet payload type.
pub const NAL_AP: u8 = 48;
/// RFC 7798 fragmentation unit payload type.
pub const NAL_FU: u8 = 49;

/// The two-byte NAL unit header (§7.3.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NalHeader {
    /// `forbidden_zero_bit`.
    pub forbidden_zero_bit: bool,
    /// `nal_unit_type` (0..=63).
    pub nal_type: u8,
    /// `nuh_layer_id` (0..=63).
    pub layer_id: u8,
    /// `nuh_temporal_id_plus1` (1..=7 in a valid stream).
    pub temporal_id_plus1: u8,
}

impl NalHeader {
    /// Reads the header; `None` when the unit is shorter than two bytes.
    pub fn parse(nal: &[u8]) -> Option<Self> {
        let [a, b] = *nal.first_chunk::<2>()?;
        Some(Self {
            forbidden_zero_bit: a & 0x80 != 0,
            nal_type: (a >> 1) & 0x3f,
            layer_id: ((a & 1) << 5) | (b >> 3),
            temporal_id_plus1: b & 7,
        })
    }

    /// The header bytes.
    pub fn to_bytes(self) -> [u8; 2] {
        [
            (u8::from(self.forbidden_zero_bit) << 7)
                | ((self.nal_type & 0x3f) << 1)
                | ((self.layer_id >> 5) & 1),
            ((self.layer_id & 0x1f) << 3) | (self.temporal_id_plus1 & 7),
        ]
    }

    /// True for IRAP pictures (types 16..=23: BLA, IDR, CRA): a decoder can start here.
    pub fn is_irap(&self) -> bool {
        (16..=23).contains(&self.nal_type)
    }

    /// True for coded slice segments (types 0..=31).
    pub fn is_vcl(&self) -> bool {
        self.nal_type < 32
    }
}

/// The NAL unit type of a NAL unit, if it has a header.
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    NalHeader::parse(nal).map(|h| h.nal_type)
}

/// True when the NAL units contain an IRAP slice.
pub fn is_keyframe<'a>(nalus: impl IntoIterator<Item = &'a [u8]>) -> bool {
    nalus
        .into_iter()
        .any(|n| NalHeader::parse(n).is_some_and(|h| h.is_irap()))
}

/// The general fields of `profile_tier_level()` (§7.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileTierLevel {
    /// `general_profile_space`.
    pub general_profile_space: u8,
    /// `general_tier_flag` (true = High tier).
    pub general_tier_flag: bool,
    /// `general_profile_idc` (1 Main, 2 Main 10, ...).
    pub general_profile_idc: u8,
    /// `general_profile_compatibility_flag[0..32]`, bit 31 being flag 0.
    pub general_profile_compatibility_flags: u32,
    /// The 48 bits of progressive/interlaced/.../constraint flags, right-aligned.
    pub general_constraint_indicator_flags: u64,
    /// `general_level_idc` (thirty times the level number).
    pub general_level_idc: u8,
}

/// Largest `sps_max_sub_layers_minus1` (§7.4.3.2.1).
const MAX_SUB_LAYERS_MINUS1: u32 = 6;
/// Largest `num_short_term_ref_pic_sets` (§7.4.3.2.1); bounds a loop.
const MAX_SHORT_TERM_RPS: u32 = 64;
/// Largest `num_negative_pics` / `num_positive_pics` (bounded by the DPB size, 16).
const MAX_RPS_PICS: u32 = 16;
/// Largest `num_long_term_ref_pics_sps` (§7.4.3.2.1).
const MAX_LONG_TERM_REF_PICS: u32 = 32;
/// Largest picture dimension accepted (H.265 level 6.2 allows 8444 wide; leave headroom).
const MAX_PIC_DIMENSION: u32 = 1 << 16;

fn parse_ptl(
    r: &mut BitReader<'_>,
    max_sub_layers_minus1: u32,
) -> Result<ProfileTierLevel, BitError> {
    let general_profile_space = r.u8(2)?;
    let general_tier_flag = r.bit()?;
    let general_profile_idc = r.u8(5)?;
    let general_profile_compatibility_flags = r.bits(32)?;
    let general_constraint_indicator_flags =
        (u64::from(r.bits(16)?) << 32) | u64::from(r.bits(32)?);
    let general_level_idc = r.u8(8)?;
    let mut present = [(false, false); 8];
    for p in present.iter_mut().take(max_sub_layers_minus1 as usize) {
        *p = (r.bit()?, r.bit()?);
    }
    if max_sub_layers_minus1 > 0 {
        r.skip(2 * (8 - max_sub_layers_minus1))?; // reserved_zero_2bits
    }
    for &(profile, level) in present.iter().take(max_sub_layers_minus1 as usize) {
        if profile {
            r.skip(88)?;
        }
        if level {
            r.skip(8)?;
        }
    }
    Ok(ProfileTierLevel {
        general_profile_space,
        general_tier_flag,
        general_profile_idc,
        general_profile_compatibility_flags,
        general_constraint_indicator_flags,
        general_level_idc,
    })
}

/// The sequence parameter set fields Sluice uses (§7.3.2.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sps {
    /// `sps_video_parameter_set_id`.
    pub vps_id: u8,
    /// `sps_max_sub_layers_minus1 + 1`.
    pub max_sub_layers: u8,
    /// The general profile, tier and level.
    pub profile: ProfileTierLevel,
    /// `sps_seq_parameter_set_id` (0..=15).
    pub id: u8,
    /// `chroma_format_idc`.
    pub chroma_format_idc: u8,
    /// `pic_width_in_luma_samples` (coded width).
    pub pic_width: u32,
    /// `pic_height_in_luma_samples` (coded height).
    pub pic_height: u32,
    /// Display width after the conformance window.
    pub width: u32,
    /// Display height after the conformance window.
    pub height: u32,
    /// Luma bit depth.
    pub bit_depth_luma: u8,
    /// `sps_max_num_reorder_pics` of the highest sub-layer: 0 means no reordering.
    pub max_num_reorder_pics: u32,
    /// `log2_min_luma_coding_block_size_minus3 + 3 + log2_diff_max_min_luma_coding_block_size`:
    /// the CTB size, needed to size `slice_segment_address`.
    pub log2_ctb_size: u8,
    /// VUI `vui_num_units_in_tick` and `vui_time_scale`, when present.
    pub timing: Option<(u32, u32)>,
}

impl Sps {
    /// Parses an SPS NAL unit (with its two-byte header).
    ///
    /// The VUI is read up to its timing info; an error inside it leaves `timing` empty rather
    /// than failing the SPS.
    pub fn parse(nal: &[u8]) -> Result<Self, BitError> {
        let h = NalHeader::parse(nal).ok_or(BitError::Truncated)?;
        if h.nal_type != NAL_SPS {
            return Err(BitError::WrongNalType(h.nal_type));
        }
        let mut r = BitReader::rbsp(nal.get(2..).unwrap_or_default());
        let vps_id = r.u8(4)?;
        let max_sub_layers_minus1 = r.bits(3)?;
        if max_sub_layers_minus1 > MAX_SUB_LAYERS_MINUS1 {
            return Err(BitError::OutOfRange("sps_max_sub_layers_minus1"));
        }
        r.bit()?; // sps_temporal_id_nesting_flag
        let profile = parse_ptl(&mut r, max_sub_layers_minus1)?;
        let id = r.ue_max(15, "sps_seq_parameter_set_id")? as u8;
        let chroma_format_idc = r.ue_max(3, "chroma_format_idc")? as u8;
        let mut separate_colour_plane = false;
        if chroma_format_idc == 3 {
            separate_colour_plane = r.bit()?;
        }
        let pic_width = r.ue_max(MAX_PIC_DIMENSION, "pic_width_in_luma_samples")?;
        let pic_height = r.ue_max(MAX_PIC_DIMENSION, "pic_height_in_luma_samples")?;
        let mut window = [0u32; 4];
        if r.bit()? {
            for w in &mut window {
                *w = r.ue_max(MAX_PIC_DIMENSION, "conf_win_offset")?;
            }
        }
        // Table 6-1: SubWidthC / SubHeightC.
        let (sub_w, sub_h) = match (chroma_format_idc, separate_colour_plane) {
            (1, _) => (2, 2),
            (2, _) => (2, 1),
            _ => (1, 1),
        };
        let width = pic_width
            .checked_sub(sub_w * (window[0] + window[1]))
            .ok_or(BitError::OutOfRange("conf_win_left/right_offset"))?;
        let height = pic_height
            .checked_sub(sub_h * (window[2] + window[3]))
            .ok_or(BitError::OutOfRange("conf_win_top/bottom_offset"))?;
        let bit_depth_luma = 8 + r.ue_max(8, "bit_depth_luma_minus8")? as u8;
        r.ue_max(8, "bit_depth_chroma_minus8")?;
        let log2_max_poc_lsb = 4 + r.ue_max(12, "log2_max_pic_order_cnt_lsb_minus4")?;
        let ordering_info_present = r.bit()?;
        let first = if ordering_info_present {
            0
        } else {
            max_sub_layers_minus1
        };
        let mut max_num_reorder_pics = 0;
        for _ in first..=max_sub_layers_minus1 {
            r.ue()?; // sps_max_dec_pic_buffering_minus1
            max_num_reorder_pics = r.ue()?;
            r.ue()?; // sps_max_latency_increase_plus1
        }
        let log2_min_cb = 3 + r.ue_max(3, "log2_min_luma_coding_block_size_minus3")?;
        let log2_ctb_size =
            log2_min_cb + r.ue_max(3, "log2_diff_max_min_luma_coding_block_size")?;
        let mut sps = Sps {
            vps_id,
            max_sub_layers: max_sub_layers_minus1 as u8 + 1,
            profile,
            id,
            chroma_format_idc,
            pic_width,
            pic_height,
            width,
            height,
            bit_depth_luma,
            max_num_reorder_pics,
            log2_ctb_size: log2_ctb_size as u8,
            timing: None,
        };
        if let Ok(t) = read_vui_timing(&mut r, max_sub_layers_minus1, log2_max_poc_lsb) {
            sps.timing = t;
        }
        Ok(sps)
    }

    /// Frames per second as a reduced fraction (`time_scale / num_units_in_tick`; an HEVC tick
    /// is a picture period, E.3.1).
    pub fn frame_rate(&self) -> Option<(u32, u32)> {
        let (units, scale) = self.timing?;
        super::reduce_fraction(u64::from(scale), u64::from(units))
    }

    /// Bits of `slice_segment_address` (§7.4.7.1: Ceil(Log2(PicSizeInCtbsY))).
    pub fn slice_address_bits(&self) -> u32 {
        let ctb = 1u64 << self.log2_ctb_size;
        let w = u64::from(self.pic_width).div_ceil(ctb);
        let h = u64::from(self.pic_height).div_ceil(ctb);
        let n = (w * h).max(1);
        64 - (n - 1).leading_zeros()
    }
}

/// Reads the rest of the SPS up to the VUI timing info.
fn read_vui_timing(
    r: &mut BitReader<'_>,
    _max_sub_layers_minus1: u32,
    log2_max_poc_lsb: u32,
) -> Result<Option<(u32, u32)>, BitError> {
    r.ue()?; // log2_min_luma_transform_block_size_minus2
    r.ue()?; // log2_diff_max_min_luma_transform_block_size
    r.ue()?; // max_transform_hierarchy_depth_inter
    r.ue()?; // max_transform_hierarchy_depth_intra
    if r.bit()? && r.bit()? {
        skip_scaling_list_data(r)?;
    }
    r.bit()?; // amp_enabled_flag
    r.bit()?; // sample_adaptive_offset_enabled_flag
    if r.bit()? {
        r.skip(8)?; // pcm bit depths
        r.ue()?;
        r.ue()?;
        r.bit()?; // pcm_loop_filter_disabled_flag
    }
    let num_sets = r.ue_max(MAX_SHORT_TERM_RPS, "num_short_term_ref_pic_sets")?;
    let mut num_delta_pocs = [0u32; MAX_SHORT_TERM_RPS as usize];
    for idx in 0..num_sets as usize {
        num_delta_pocs[idx] = skip_st_ref_pic_set(r, idx, &num_delta_pocs)?;
    }
    if r.bit()? {
        let n = r.ue_max(MAX_LONG_TERM_REF_PICS, "num_long_term_ref_pics_sps")?;
        for _ in 0..n {
            r.skip(log2_max_poc_lsb + 1)?;
        }
    }
    r.bit()?; // sps_temporal_mvp_enabled_flag
    r.bit()?; // strong_intra_smoothing_enabled_flag
    if !r.bit()? {
        return Ok(None);
    }
    // vui_parameters(), Annex E.2.1.
    if r.bit()? && r.u8(8)? == 255 {
        r.skip(32)?;
    }
    if r.bit()? {
        r.bit()?;
    }
    if r.bit()? {
        r.skip(4)?;
        if r.bit()? {
            r.skip(24)?;
        }
    }
    if r.bit()? {
        r.ue()?;
        r.ue()?;
    }
    r.skip(3)?; // neutral_chroma_indication, field_seq, frame_field_info_present
    if r.bit()? {
        for _ in 0..4 {
            r.ue()?; // default display window
        }
    }
    if r.bit()? {
        let units = r.bits(32)?;
        let scale = r.bits(32)?;
        return Ok(Some((units, scale)));
    }
    Ok(None)
}

/// Skips `scaling_list_data()` (§7.3.4).
fn skip_scaling_list_data(r: &mut BitReader<'_>) -> Result<(), BitError> {
    for size_id in 0..4u32 {
        let step = if size_id == 3 { 3 } else { 1 };
        for _ in (0..6).step_by(step) {
            if !r.bit()? {
                r.ue()?; // scaling_list_pred_matrix_id_delta
            } else {
                let coefs = 64.min(1u32 << (4 + (size_id << 1)));
                if size_id > 1 {
                    r.se()?;
                }
                for _ in 0..coefs {
                    r.se()?;
                }
            }
        }
    }
    Ok(())
}

/// Skips `st_ref_pic_set(idx)` (§7.3.7) in an SPS; returns its NumDeltaPocs.
fn skip_st_ref_pic_set(
    r: &mut BitReader<'_>,
    idx: usize,
    num_delta_pocs: &[u32],
) -> Result<u32, BitError> {
    if idx != 0 && r.bit()? {
        // inter_ref_pic_set_prediction_flag: predicted from the previous set (delta_idx is
        // only coded in slice headers).
        r.bit()?; // delta_rps_sign
        r.ue()?; // abs_delta_rps_minus1
        let reference = num_delta_pocs
            .get(idx - 1)
            .copied()
            .ok_or(BitError::OutOfRange("RefRpsIdx"))?;
        let mut count = 0;
        for _ in 0..=reference {
            let used = r.bit()?;
            let use_delta = if used { true } else { r.bit()? };
            if use_delta {
                count += 1;
            }
        }
        Ok(count)
    } else {
        let neg = r.ue_max(MAX_RPS_PICS, "num_negative_pics")?;
        let pos = r.ue_max(MAX_RPS_PICS, "num_positive_pics")?;
        for _ in 0..neg + pos {
            r.ue()?;
            r.bit()?;
        }
        Ok(neg + pos)
    }
}

/// The start of a picture parameter set (§7.3.2.3.1): what a slice header needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pps {
    /// `pps_pic_parameter_set_id` (0..=63).
    pub id: u8,
    /// `pps_seq_parameter_set_id` (0..=15).
    pub sps_id: u8,
    /// `dependent_slice_segments_enabled_flag`.
    pub dependent_slice_segments_enabled: bool,
    /// `output_flag_present_flag`.
    pub output_flag_present: bool,
    /// `num_extra_slice_header_bits`.
    pub num_extra_slice_header_bits: u8,
}

impl Pps {
    /// Parses the start of a PPS NAL unit (with header).
    pub fn parse(nal: &[u8]) -> Result<Self, BitError> {
        let h = NalHeader::parse(nal).ok_or(BitError::Truncated)?;
        if h.nal_type != NAL_PPS {
            return Err(BitError::WrongNalType(h.nal_type));
        }
        let mut r = BitReader::rbsp(nal.get(2..).unwrap_or_default());
        Ok(Self {
            id: r.ue_max(63, "pps_pic_parameter_set_id")? as u8,
            sps_id: r.ue_max(15, "pps_seq_parameter_set_id")? as u8,
            dependent_slice_segments_enabled: r.bit()?,
            output_flag_present: r.bit()?,
            num_extra_slice_header_bits: r.u8(3)?,
        })
    }
}

/// Slice types (Table 7-7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SliceType {
    /// 0: B slice.
    B,
    /// 1: P slice.
    P,
    /// 2: I slice.
    I,
}

/// The slice type of a slice segment NAL unit (with header), or `None` for a dependent slice
/// segment (which inherits it). Needs the active PPS and SPS to size the fields before it.
pub fn slice_type(nal: &[u8], pps: &Pps, sps: &Sps) -> Result<Option<SliceType>, BitError> {
    let h = NalHeader::parse(nal).ok_or(BitError::Truncated)?;
    if !h.is_vcl() {
        return Err(BitError::WrongNalType(h.nal_type));
    }
    let mut r = BitReader::rbsp(nal.get(2..).unwrap_or_default());
    let first_slice_segment_in_pic = r.bit()?;
    if h.is_irap() {
        r.bit()?; // no_output_of_prior_pics_flag
    }
    r.ue_max(63, "slice_pic_parameter_set_id")?;
    if !first_slice_segment_in_pic {
        let dependent = pps.dependent_slice_segments_enabled && r.bit()?;
        r.skip(sps.slice_address_bits())?;
        if dependent {
            return Ok(None);
        }
    }
    r.skip(u32::from(pps.num_extra_slice_header_bits))?;
    Ok(Some(match r.ue_max(2, "slice_type")? {
        0 => SliceType::B,
        1 => SliceType::P,
        _ => SliceType::I,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    // ffmpeg/libx265 Main profile, 1920x1080 at 50 fps.
    const SPS_1080P: &[u8] = &[
        0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00,
        0x03, 0x00, 0x7b, 0xa0, 0x03, 0xc0, 0x80, 0x10, 0xe5, 0x96, 0x56, 0x69, 0x24, 0xca, 0xf0,
        0x16, 0x80, 0x80, 0x00, 0x00, 0x03, 0x00, 0x80, 0x00, 0x00, 0x19, 0x04,
    ];
    // Same encoder, 352x288 at 24 fps.
    const SPS_CIF: &[u8] = &[
        0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00,
        0x03, 0x00, 0x3c, 0xa0, 0x0b, 0x08, 0x04, 0x85, 0x96, 0x56, 0x69, 0x24, 0xca, 0xf0, 0x16,
        0x80, 0x80, 0x00, 0x00, 0x03, 0x00, 0x80, 0x00, 0x00, 0x0c, 0x04,
    ];
    // Same encoder, 350x286: coded 352x288 with a conformance window, 30 fps.
    const SPS_ODD: &[u8] = &[
        0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00,
        0x03, 0x00, 0x3c, 0xa0, 0x0b, 0x08, 0x04, 0x87, 0x55, 0x96, 0x56, 0x69, 0x24, 0xca, 0xf0,
        0x16, 0x80, 0x80, 0x00, 0x00, 0x03, 0x00, 0x80, 0x00, 0x00, 0x0f, 0x04,
    ];
    const PPS: &[u8] = &[0x44, 0x01, 0xc1, 0x72, 0xb4, 0x62, 0x40];

    #[test]
    fn nal_header_round_trip() {
        let h = NalHeader::parse(&[0x40, 0x01]).unwrap();
        assert_eq!(
            (h.nal_type, h.layer_id, h.temporal_id_plus1),
            (NAL_VPS, 0, 1)
        );
        assert_eq!(h.to_bytes(), [0x40, 0x01]);
        let idr = NalHeader::parse(&[0x26, 0x01]).unwrap();
        assert!(idr.is_irap() && idr.is_vcl());
        assert!(NalHeader::parse(&[0x26]).is_none());
        assert!(is_keyframe([&[0x28u8, 0x01][..]]));
        assert!(!is_keyframe([&[0x02u8, 0x01][..]]));
    }

    #[test]
    fn parses_sps() {
        let s = Sps::parse(SPS_1080P).unwrap();
        assert_eq!(s.profile.general_profile_idc, 1);
        assert_eq!(s.profile.general_level_idc, 123);
        assert_eq!((s.pic_width, s.pic_height), (1920, 1080));
        assert_eq!((s.width, s.height), (1920, 1080));
        assert_eq!(s.frame_rate(), Some((50, 1)));
        let c = Sps::parse(SPS_CIF).unwrap();
        assert_eq!((c.width, c.height), (352, 288));
        assert_eq!(c.frame_rate(), Some((24, 1)));
        let o = Sps::parse(SPS_ODD).unwrap();
        assert_eq!((o.pic_width, o.pic_height), (352, 288));
        assert_eq!((o.width, o.height), (350, 286));
        assert_eq!(o.frame_rate(), Some((30, 1)));
        assert_eq!(Sps::parse(PPS), Err(BitError::WrongNalType(NAL_PPS)));
        for n in 0..24 {
            assert!(Sps::parse(&SPS_1080P[..n]).is_err(), "prefix {n}");
        }
    }

    #[test]
    fn pps_and_slice_type() {
        let p = Pps::parse(PPS).unwrap();
        assert_eq!((p.id, p.sps_id), (0, 0));
        let s = Sps::parse(SPS_CIF).unwrap();
        // IDR_W_RADL (19): first_slice 1, no_output 0, pps_id ue 0 (1), slice_type ue 2 (011).
        let idr = [0x26, 0x01, 0b1010_1100];
        assert_eq!(slice_type(&idr, &p, &s), Ok(Some(SliceType::I)));
        // TRAIL_R (1): first_slice 1, pps_id 0 (1), slice_type 0 (1).
        let b = [0x02, 0x01, 0b1111_0000];
        assert_eq!(slice_type(&b, &p, &s), Ok(Some(SliceType::B)));
        assert!(slice_type(PPS, &p, &s).is_err());
    }
}
