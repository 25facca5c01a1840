//! Linear-interpolation sample-rate conversion to Opus's 48 kHz, for AAC at 44.1 kHz and
//! the other rates Opus cannot take directly. Plain interpolation is audibly fine for speech
//! and monitoring; it does not band-limit, so content near Nyquist aliases a little.

/// A streaming resampler for interleaved `f32` audio; state carries across calls, so
/// consecutive chunks join without a click.
#[derive(Debug, Clone)]
pub struct LinearResampler {
    channels: usize,
    /// Input frames per output frame.
    step: f64,
    /// Position of the next output frame, in input frames, relative to the current chunk;
    /// -1.0 is the previous chunk's last frame (`prev`).
    pos: f64,
    prev: Vec<f32>,
    primed: bool,
}

impl LinearResampler {
    /// Converts `in_rate` to `out_rate` for `channels` interleaved channels.
    pub fn new(in_rate: u32, out_rate: u32, channels: usize) -> Self {
        LinearResampler {
            channels: channels.max(1),
            step: f64::from(in_rate.max(1)) / f64::from(out_rate.max(1)),
            pos: 0.0,
            prev: vec![0.0; channels.max(1)],
            primed: false,
        }
    }

    /// Resamples one chunk, appending to `out`. A trailing partial frame is ignored.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        let ch = self.channels;
        let n = input.len() / ch;
        if n == 0 {
            return;
        }
        if !self.primed {
            self.primed = true;
            self.pos = 0.0;
        }
        let prev = &self.prev;
        let frame = |i: isize, c: usize| -> f32 {
            if i < 0 {
                prev.get(c).copied().unwrap_or(0.0)
            } else {
                input.get(i as usize * ch + c).copied().unwrap_or(0.0)
            }
        };
        // Interpolate between frame floor(pos) and the next while both are known.
        while self.pos.floor() < (n - 1) as f64 {
            let i = self.pos.floor() as isize;
            let frac = (self.pos - i as f64) as f32;
            for c in 0..ch {
                let a = frame(i, c);
                let b = frame(i + 1, c);
                out.push(a + (b - a) * frac);
            }
            self.pos += self.step;
        }
        let last: Vec<f32> = (0..ch).map(|c| frame(n as isize - 1, c)).collect();
        self.prev = last;
        self.pos -= n as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn same_rate_is_identity() {
        let mut r = LinearResampler::new(48_000, 48_000, 1);
        let input: Vec<f32> = (0..100).map(|i| i as f32).collect();
        let mut out = Vec::new();
        r.process(&input[..50], &mut out);
        r.process(&input[50..], &mut out);
        // The last input frame is emitted once the next chunk arrives; everything before it
        // comes out unchanged and in order.
        assert_eq!(&out[..], &input[..out.len()]);
        assert!(out.len() >= 99);
    }

    #[test]
    fn upsampling_a_ramp_stays_a_ramp() {
        let mut r = LinearResampler::new(44_100, 48_000, 2);
        let input: Vec<f32> = (0..441).flat_map(|i| [i as f32, -(i as f32)]).collect();
        let mut out = Vec::new();
        r.process(&input, &mut out);
        assert!(
            (out.len() / 2) as i64 - 480 <= 1 && 480 - (out.len() / 2) as i64 <= 1,
            "{}",
            out.len()
        );
        for w in out.chunks(2).collect::<Vec<_>>().windows(2) {
            assert!(w[1][0] >= w[0][0], "not monotonic");
            assert_eq!(w[1][1], -w[1][0]);
        }
    }

    proptest! {
        /// Output length tracks the rate ratio however the input is chunked.
        #[test]
        fn length_follows_ratio(chunks in prop::collection::vec(1usize..2000, 1..30),
                                rate in prop::sample::select(vec![8_000u32, 16_000, 22_050, 32_000, 44_100, 48_000, 96_000])) {
            let mut r = LinearResampler::new(rate, 48_000, 1);
            let mut out = Vec::new();
            let mut total = 0usize;
            for c in chunks {
                r.process(&vec![0.5f32; c], &mut out);
                total += c;
                let expect = total as f64 * 48_000.0 / f64::from(rate);
                prop_assert!((out.len() as f64 - expect).abs() <= 48_000.0 / f64::from(rate) + 2.0,
                    "{} vs {}", out.len(), expect);
            }
            prop_assert!(out.iter().all(|&s| (s - 0.5).abs() < 1e-6));
        }
    }
}
