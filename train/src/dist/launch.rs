//! Starting a run's data-parallel world: `--dist none|mpi|nccl|auto`, the launcher's
//! environment, and the start-up agreement of the ranks on their configuration.
//!
//! * `none`: one process. Refused when an MPI launcher started several processes, since each
//!   would train alone into the same run directory.
//! * `mpi`: the ranks of an `mpirun` launch, collectives over Open MPI on the CPU (feature
//!   `mpi`). A process started without a launcher is a world of one.
//! * `nccl`: collectives between GPUs with NCCL (feature `nccl`): CUDA kernels on ORT's
//!   stream (see `crate::dist::nccl`). `libnccl.so.2` (from the `nvidia-nccl-cu13` wheel) is
//!   looked for before cudarc touches it, since cudarc panics when it is missing. Ranks come
//!   from an MPI launch (rank 0 sends the NCCL id over MPI, so several ranks need the `mpi`
//!   feature too); without a launcher it is a world of one whose step still runs its
//!   collectives, through NCCL.
//! * `auto` (the default): `mpi` when an MPI launcher started this process (its environment
//!   says so), else `none`.

use super::comm::{CommError, Communicator};
use crate::session::Collectives;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

/// The PyPI package that ships NCCL for CUDA 13.
pub const NCCL_PACKAGE: &str = "nvidia-nccl-cu13";
/// NCCL's library, as cudarc loads it.
pub const NCCL_LIB: &str = "libnccl.so.2";

/// How a run's ranks talk to each other (`--dist`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DistMode {
    /// One process.
    None,
    /// MPI ranks launched by `mpirun`.
    Mpi,
    /// NCCL between GPUs.
    Nccl,
    /// `mpi` under an MPI launcher, else `none`.
    #[default]
    Auto,
}

impl FromStr for DistMode {
    type Err = LaunchError;

    /// # Examples
    /// ```
    /// use patchmix_train::dist::DistMode;
    /// assert_eq!("mpi".parse::<DistMode>()?, DistMode::Mpi);
    /// assert!("gloo".parse::<DistMode>().is_err());
    /// # Ok::<(), patchmix_train::dist::LaunchError>(())
    /// ```
    fn from_str(s: &str) -> Result<Self, LaunchError> {
        Ok(match s {
            "none" => DistMode::None,
            "mpi" => DistMode::Mpi,
            "nccl" => DistMode::Nccl,
            "auto" => DistMode::Auto,
            other => return Err(LaunchError::UnknownMode(other.to_string())),
        })
    }
}

impl std::fmt::Display for DistMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DistMode::None => "none",
            DistMode::Mpi => "mpi",
            DistMode::Nccl => "nccl",
            DistMode::Auto => "auto",
        })
    }
}

/// Why a data-parallel world could not be started or its ranks disagree.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    /// `--dist` names no backend.
    #[error("--dist {0}: expected none, mpi, nccl or auto")]
    UnknownMode(String),
    /// MPI was asked for (or a launcher started several ranks) in a build without it.
    #[error(
        "--dist {mode}: this patchmix was built without MPI support{launched}; rebuild with `cargo build --release --features mpi` (needs Open MPI: apt-get install libopenmpi-dev openmpi-bin libclang-dev)"
    )]
    MpiNotBuilt {
        /// The mode asked for.
        mode: DistMode,
        /// What the launcher's environment says, if anything.
        launched: String,
    },
    /// `--dist none` under a launcher that started several ranks.
    #[error(
        "--dist none, but an MPI launcher started {world} ranks: each would train alone into the same run directory; use --dist mpi (or auto), or start one process"
    )]
    SeveralRanksWithoutDist {
        /// The launcher's world size.
        world: usize,
    },
    /// NCCL's library is not installed.
    #[error(
        "--dist nccl: {NCCL_LIB} not found (looked in {searched}); install it with `pip install {NCCL_PACKAGE}`"
    )]
    NcclMissing {
        /// Where it was looked for.
        searched: String,
    },
    /// NCCL is installed but this build has no NCCL kernels.
    #[error(
        "--dist nccl: {} is installed, but this patchmix was built without NCCL support; rebuild with `cargo build --release --features nccl` (add `mpi` for several ranks), or use --dist mpi, whose collectives also serve CUDA ranks (staged through host memory)",
        .0.display()
    )]
    NcclNotBuilt(PathBuf),
    /// NCCL is installed but cannot be used.
    #[error("--dist nccl: {0}")]
    NcclUnusable(String),
    /// The transport failed to start or to exchange the start-up check.
    #[error(transparent)]
    Comm(#[from] CommError),
    /// The ranks were started with different configurations.
    #[error(
        "the ranks were started with different {what}: rank {} differs from rank 0 (SHA-256 prefixes {}); every rank must run the same command",
        .ranks.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
        .digests.join(" vs ")
    )]
    ConfigDiffers {
        /// What was compared.
        what: &'static str,
        /// The ranks whose hash differs from rank 0's.
        ranks: Vec<usize>,
        /// Rank 0's digest prefix, then each differing rank's.
        digests: Vec<String>,
    },
}

/// The world size an MPI launcher announced in this process's environment (Open MPI's
/// `OMPI_COMM_WORLD_SIZE`, MPICH/Hydra's `PMI_SIZE`), if any.
///
/// # Examples
/// ```
/// // Outside mpirun the variables are unset.
/// assert_eq!(patchmix_train::dist::launcher_world_size(), None);
/// ```
pub fn launcher_world_size() -> Option<usize> {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.trim().parse().ok())
}

/// This process's index among the ranks on its node, from the launcher's environment
/// (Open MPI's `OMPI_COMM_WORLD_LOCAL_RANK`, MPICH's `MPI_LOCALRANKID`).
pub(crate) fn local_rank() -> Option<usize> {
    ["OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.trim().parse().ok())
}

/// A started world: this process's rank, and the communicator its step's collectives use.
pub struct DistWorld {
    collectives: Option<Collectives>,
    #[cfg(feature = "mpi")]
    mpi: Option<Arc<super::mpi::MpiWorld>>,
}

impl std::fmt::Debug for DistWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DistWorld(rank {} of {})",
            self.rank(),
            self.world_size()
        )
    }
}

impl DistWorld {
    /// One process.
    pub fn single() -> DistWorld {
        DistWorld {
            collectives: None,
            #[cfg(feature = "mpi")]
            mpi: None,
        }
    }

    /// A world on any communicator (threads in tests, or a caller's own transport).
    pub fn on(comm: Arc<dyn Communicator>) -> DistWorld {
        DistWorld {
            collectives: Some(Collectives::host(comm)),
            #[cfg(feature = "mpi")]
            mpi: None,
        }
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.collectives.as_ref().map_or(0, |c| c.comm().rank())
    }

    /// The number of ranks.
    pub fn world_size(&self) -> usize {
        self.collectives
            .as_ref()
            .map_or(1, |c| c.comm().world_size())
    }

    /// The communicator for the sessions of a world of more than one rank, or of an NCCL
    /// world of any size (whose step runs its collectives through NCCL even alone).
    pub fn collectives(&self) -> Option<&Collectives> {
        self.collectives
            .as_ref()
            .filter(|c| c.comm().world_size() > 1 || c.on_device())
    }

    /// The ranks this world's step graphs span, with collectives where [`DistWorld::collectives`]
    /// has a communicator for them.
    pub fn step_ranks(&self) -> crate::step::Ranks {
        crate::step::Ranks {
            world_size: self.world_size(),
            collectives: self.collectives().is_some(),
        }
    }

    /// Ends every rank after an error on this one, so that none waits for it forever: an MPI
    /// launch is aborted (`MPI_Abort`; `mpirun` names this rank); otherwise nothing happens
    /// (the caller returns its error).
    pub fn abort(&self, code: i32) {
        #[cfg(feature = "mpi")]
        if let Some(m) = &self.mpi
            && m.world_size() > 1
        {
            m.abort(code);
        }
        let _ = code;
    }
}

/// Starts the world `mode` asks for.
///
/// # Errors
/// [`LaunchError`]: MPI asked for (or launched) without the `mpi` feature, `none` under a
/// multi-rank launch, NCCL missing or not built, or MPI failing to start.
///
/// # Examples
/// ```
/// use patchmix_train::dist::{DistMode, start};
/// let w = start(DistMode::Auto)?; // no launcher: one process
/// assert_eq!((w.rank(), w.world_size()), (0, 1));
/// # Ok::<(), patchmix_train::dist::LaunchError>(())
/// ```
pub fn start(mode: DistMode) -> Result<DistWorld, LaunchError> {
    let launched = launcher_world_size();
    match mode {
        DistMode::None => match launched {
            Some(world) if world > 1 => Err(LaunchError::SeveralRanksWithoutDist { world }),
            _ => Ok(DistWorld::single()),
        },
        DistMode::Auto => match launched {
            Some(world) if world > 1 => start_mpi(mode, launched),
            _ => Ok(DistWorld::single()),
        },
        DistMode::Mpi => start_mpi(mode, launched),
        DistMode::Nccl => start_nccl(launched),
    }
}

#[cfg(feature = "nccl")]
fn start_nccl(launched: Option<usize>) -> Result<DistWorld, LaunchError> {
    let path = find_nccl()?;
    let lib = super::nccl::ffi::NcclLib::load(&path).map_err(LaunchError::NcclUnusable)?;
    let mut world = match launched {
        Some(n) if n > 1 => start_mpi(DistMode::Nccl, launched)?,
        _ => DistWorld::on(Arc::new(
            super::threads::ThreadWorld::ranks(1)
                .pop()
                .ok_or_else(|| LaunchError::NcclUnusable("no rank".into()))?,
        )),
    };
    let host = world
        .collectives
        .as_ref()
        .map(|c| c.comm().clone())
        .ok_or_else(|| LaunchError::NcclUnusable("no host communicator".into()))?;
    let nccl = super::nccl::NcclWorld::join(lib, host)?;
    world.collectives = Some(Collectives::nccl(Arc::new(nccl)));
    Ok(world)
}

#[cfg(not(feature = "nccl"))]
fn start_nccl(_launched: Option<usize>) -> Result<DistWorld, LaunchError> {
    Err(LaunchError::NcclNotBuilt(find_nccl()?))
}

#[cfg(feature = "mpi")]
fn start_mpi(_mode: DistMode, _launched: Option<usize>) -> Result<DistWorld, LaunchError> {
    let m = Arc::new(super::mpi::MpiWorld::init()?);
    Ok(DistWorld {
        collectives: Some(Collectives::host(m.clone())),
        mpi: Some(m),
    })
}

#[cfg(not(feature = "mpi"))]
fn start_mpi(mode: DistMode, launched: Option<usize>) -> Result<DistWorld, LaunchError> {
    Err(LaunchError::MpiNotBuilt {
        mode,
        launched: launched
            .map(|w| format!(" (an MPI launcher started {w} ranks)"))
            .unwrap_or_default(),
    })
}

/// NCCL's library, or where it was looked for.
fn find_nccl() -> Result<PathBuf, LaunchError> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("LD_LIBRARY_PATH")
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default();
    dirs.extend(crate::device::diagnostics::pip_cuda_lib_dirs());
    dirs.extend(["/usr/lib/x86_64-linux-gnu", "/usr/local/lib", "/usr/lib"].map(PathBuf::from));
    match crate::device::diagnostics::find_library_in(NCCL_LIB, &dirs) {
        Some(lib) => Ok(lib),
        None => Err(LaunchError::NcclMissing {
            searched: if dirs.is_empty() {
                "no directories".into()
            } else {
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        }),
    }
}

/// Checks that every rank holds the same `bytes` (a configuration), by all-gathering a
/// 64-bit prefix of their SHA-256 (as four 16-bit halves, exact in f32).
///
/// # Errors
/// [`LaunchError::ConfigDiffers`] naming the ranks that differ from rank 0 (on every rank), or
/// the transport's error.
///
/// # Examples
/// ```
/// use patchmix_train::dist::{Communicator, ThreadWorld, agree_on};
/// let ranks = ThreadWorld::ranks(2);
/// let results: Vec<_> = std::thread::scope(|s| {
///     let h: Vec<_> = ranks.iter().map(|r| s.spawn(move || {
///         agree_on(r, "configurations", format!("seed = {}", r.rank()).as_bytes())
///     })).collect();
///     h.into_iter().map(|h| h.join().unwrap()).collect()
/// });
/// assert!(results[1].as_ref().unwrap_err().to_string().contains("rank 1 differs from rank 0"));
/// ```
pub fn agree_on(
    comm: &dyn Communicator,
    what: &'static str,
    bytes: &[u8],
) -> Result<(), LaunchError> {
    let digest = Sha256::digest(bytes);
    let halves: Vec<f32> = digest[..8]
        .chunks(2)
        .map(|c| f32::from(u16::from_be_bytes([c[0], c[1]])))
        .collect();
    let mut all = vec![0.0f32; halves.len() * comm.world_size()];
    comm.all_gather(&halves, &mut all)?;
    let hex = |h: &[f32]| {
        h.iter()
            .map(|&x| format!("{:04x}", x as u16))
            .collect::<String>()
    };
    let per_rank: Vec<&[f32]> = all.chunks(halves.len()).collect();
    let ranks: Vec<usize> = (1..per_rank.len())
        .filter(|&r| per_rank[r] != per_rank[0])
        .collect();
    if ranks.is_empty() {
        Ok(())
    } else {
        let mut digests = vec![hex(per_rank[0])];
        digests.extend(ranks.iter().map(|&r| hex(per_rank[r])));
        Err(LaunchError::ConfigDiffers {
            what,
            ranks,
            digests,
        })
    }
}
