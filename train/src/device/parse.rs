//! The requested device and its spellings (`cpu`, `cuda`, `cuda:N`, `auto`).

use super::error::DeviceError;
use std::fmt;
use std::str::FromStr;

/// A requested device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Device {
    /// ONNX Runtime's CPU execution provider.
    #[default]
    Cpu,
    /// CUDA GPU number N through ONNX Runtime's CUDA execution provider; an error if it cannot
    /// be used.
    Cuda(u32),
    /// CUDA GPU 0 if the CUDA build and its libraries load, else the CPU (saying so, `log::info!`).
    Auto,
}

/// The accepted spellings, for messages.
pub const DEVICE_FORMS: &str = "cpu, cuda, cuda:N (N = GPU index, e.g. cuda:1) or auto";

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(0) => f.write_str("cuda"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
            Device::Auto => f.write_str("auto"),
        }
    }
}

impl FromStr for Device {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        let bad = || DeviceError::Parse {
            value: s.to_string(),
        };
        match t.as_str() {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            "auto" => Ok(Device::Auto),
            _ => match t.strip_prefix("cuda:") {
                Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                    n.parse().map(Device::Cuda).map_err(|_| bad())
                }
                _ => Err(bad()),
            },
        }
    }
}

impl serde::Serialize for Device {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Device {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_accepted_form() {
        assert_eq!("cpu".parse::<Device>().unwrap(), Device::Cpu);
        assert_eq!("CPU".parse::<Device>().unwrap(), Device::Cpu);
        assert_eq!("cuda".parse::<Device>().unwrap(), Device::Cuda(0));
        assert_eq!("cuda:0".parse::<Device>().unwrap(), Device::Cuda(0));
        assert_eq!("cuda:3".parse::<Device>().unwrap(), Device::Cuda(3));
        assert_eq!(" auto ".parse::<Device>().unwrap(), Device::Auto);
        assert_eq!(Device::default(), Device::Cpu);
    }

    #[test]
    fn rejects_other_forms_naming_the_value_and_the_accepted_ones() {
        for bad in [
            "bogus", "cuda:", "cuda:-1", "cuda:x", "cuda0", "cuda:1:2", "", "tpu",
        ] {
            let e = bad.parse::<Device>().unwrap_err().to_string();
            assert!(e.contains(&format!("`{bad}`")), "{e}");
            assert!(
                e.contains("cpu") && e.contains("cuda:N") && e.contains("auto"),
                "{e}"
            );
        }
        // Larger than u32.
        assert!("cuda:99999999999".parse::<Device>().is_err());
    }

    #[test]
    fn display_round_trips_and_serde_uses_the_string_form() {
        for d in [Device::Cpu, Device::Cuda(0), Device::Cuda(7), Device::Auto] {
            assert_eq!(d.to_string().parse::<Device>().unwrap(), d);
        }
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct C {
            device: Device,
        }
        let t = toml::to_string(&C {
            device: Device::Cuda(2),
        })
        .unwrap();
        assert_eq!(t.trim(), "device = \"cuda:2\"");
        let back: C = toml::from_str("device = \"auto\"").unwrap();
        assert_eq!(back.device, Device::Auto);
        let e = toml::from_str::<C>("device = \"gpu9\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("gpu9") && e.contains("cuda:N"), "{e}");
        assert_eq!(
            serde_json::to_string(&Device::Cuda(1)).unwrap(),
            "\"cuda:1\""
        );
    }
}
