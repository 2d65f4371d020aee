//! A deterministic synthetic dataset for tests and demos: `synthetic:N[,size=S][,classes=C][,seed=K]`.
//!
//! Image `i` of a split has label `i mod C`. Each class has its own colour and stripe direction and
//! frequency (drawn from the seed); each image adds its own stripe phase, brightness and per-pixel
//! noise (drawn from the seed, the split and `i`). So the classes are learnable but not trivial, and
//! the train and test splits are different samples of the same distribution.

use std::f32::consts::PI;
use std::fmt;
use std::str::FromStr;

use image::RgbImage;

use super::{DataError, Split};

/// Parameters of a synthetic dataset.
///
/// # Examples
///
/// ```
/// use patchmix_export::data::SyntheticSpec;
///
/// let spec: SyntheticSpec = "synthetic:256,size=16,classes=4,seed=7".parse().unwrap();
/// assert_eq!((spec.n, spec.size, spec.classes, spec.seed), (256, 16, 4, 7));
/// let default: SyntheticSpec = "synthetic:100".parse().unwrap();
/// assert_eq!((default.size, default.classes, default.seed), (32, 10, 0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntheticSpec {
    /// Number of images.
    pub n: usize,
    /// Side of the square images (default 32).
    pub size: u32,
    /// Number of classes (default 10).
    pub classes: u32,
    /// Seed (default 0).
    pub seed: u64,
}

impl SyntheticSpec {
    /// The prefix that marks a synthetic dataset reference.
    pub const PREFIX: &'static str = "synthetic:";
}

impl fmt::Display for SyntheticSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "synthetic:{},size={},classes={},seed={}",
            self.n, self.size, self.classes, self.seed
        )
    }
}

impl FromStr for SyntheticSpec {
    type Err = DataError;

    /// Parses `synthetic:N[,size=S][,classes=C][,seed=K]` (no split suffix).
    fn from_str(s: &str) -> Result<Self, DataError> {
        let bad = |detail: String| DataError::BadSpec {
            spec: s.to_owned(),
            detail: format!(
                "{detail}; the syntax is synthetic:N[,size=S][,classes=C][,seed=K], e.g. synthetic:1000,size=32,classes=10,seed=0"
            ),
        };
        let rest = s
            .strip_prefix(Self::PREFIX)
            .ok_or_else(|| bad("does not start with 'synthetic:'".into()))?;
        let mut parts = rest.split(',');
        let n_text = parts.next().unwrap_or("");
        let n: usize = n_text
            .trim()
            .parse()
            .map_err(|_| bad(format!("'{n_text}' is not an image count")))?;
        let mut spec = SyntheticSpec {
            n,
            size: 32,
            classes: 10,
            seed: 0,
        };
        for part in parts {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("'{part}' is not key=value")))?;
            let num = |what: &str| -> Result<u64, DataError> {
                value
                    .trim()
                    .parse()
                    .map_err(|_| bad(format!("{what} '{value}' is not a non-negative integer")))
            };
            match key.trim() {
                "size" => {
                    spec.size =
                        u32::try_from(num("size")?).map_err(|_| bad("size is too large".into()))?
                }
                "classes" => {
                    spec.classes = u32::try_from(num("classes")?)
                        .map_err(|_| bad("classes is too large".into()))?;
                }
                "seed" => spec.seed = num("seed")?,
                other => return Err(bad(format!("unknown key '{other}'"))),
            }
        }
        if spec.n == 0 || spec.size == 0 || spec.classes == 0 {
            return Err(bad("N, size and classes must be at least 1".into()));
        }
        if spec.size > 4096 {
            return Err(bad("size must be at most 4096".into()));
        }
        Ok(spec)
    }
}

/// SplitMix64: one step of the generator, also a good 64-bit mixer.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A tiny deterministic stream of uniform floats.
struct Stream(u64);

impl Stream {
    fn new(parts: &[u64]) -> Self {
        Self(parts.iter().fold(0x5EED, |h, &p| splitmix64(h ^ p)))
    }

    fn next_f32(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let bits = splitmix64(self.0) >> 40; // 24 random bits
        bits as f32 / (1u64 << 24) as f32
    }
}

/// A generated dataset.
#[derive(Debug, Clone)]
pub(crate) struct Synthetic {
    pub(crate) spec: SyntheticSpec,
    pub(crate) split: Split,
}

impl Synthetic {
    /// The label of image `i`.
    pub(crate) fn label(&self, i: usize) -> u32 {
        (i as u64 % u64::from(self.spec.classes)) as u32
    }

    /// Renders image `i`.
    pub(crate) fn image(&self, i: usize) -> RgbImage {
        let label = self.label(i);
        let mut class = Stream::new(&[self.spec.seed, 1, u64::from(label)]);
        let colour = [class.next_f32(), class.next_f32(), class.next_f32()];
        let angle = class.next_f32() * PI;
        let freq = 0.5 + 1.5 * class.next_f32();
        let split_tag = match self.split {
            Split::Train => 2,
            Split::Test => 3,
        };
        let mut sample = Stream::new(&[self.spec.seed, split_tag, i as u64]);
        let phase = sample.next_f32() * 2.0 * PI;
        let gain = 0.7 + 0.3 * sample.next_f32();
        let size = self.spec.size;
        let scale = 2.0 * PI * freq * 4.0 / size as f32;
        let (dx, dy) = (angle.cos() * scale, angle.sin() * scale);
        RgbImage::from_fn(size, size, |x, y| {
            let wave = 0.5 + 0.5 * (x as f32 * dx + y as f32 * dy + phase).sin();
            let px = colour.map(|c| {
                let noise = (sample.next_f32() - 0.5) * 0.3;
                let v = (0.15 + 0.7 * c * wave) * gain + noise;
                (v.clamp(0.0, 1.0) * 255.0).round() as u8
            });
            image::Rgb(px)
        })
    }
}

/// The seed-mixing hash shared with the training loader's documentation: SplitMix64 folded over
/// the parts.
///
/// # Examples
///
/// ```
/// use patchmix_export::data::mix_seed;
///
/// assert_eq!(mix_seed(&[1, 2, 3]), mix_seed(&[1, 2, 3]));
/// assert_ne!(mix_seed(&[1, 2, 3]), mix_seed(&[1, 3, 2]));
/// ```
pub fn mix_seed(parts: &[u64]) -> u64 {
    parts
        .iter()
        .fold(0x243F_6A88_85A3_08D3, |h, &p| splitmix64(h ^ splitmix64(p)))
}
