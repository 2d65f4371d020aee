//! NCCL's C API: the only `unsafe` code of this crate, kept to this module.
//!
//! The types are cudarc 0.19's NCCL bindings (`cudarc::nccl::sys`). The library is opened
//! here, with `libloading`, from the path [`crate::dist::launch`] found: cudarc's own loader
//! looks only for `libnccl.so`, `libnccl.so.13`, … and never for `libnccl.so.2`, the one file
//! the `nvidia-nccl-cu13` wheel ships, and it panics when it finds nothing. The six entry
//! points are looked up once, when the library is opened, so a library that lacks one is an
//! error then, not a crash mid-step.
//!
//! Why the `unsafe` is sound:
//! * opening the library runs its initialisers; `libnccl.so.2` is a plain C library;
//! * each symbol is read as the function type of its declaration in `nccl.h` (the same
//!   signatures cudarc's bindings give); the library is never closed (its bootstrap thread
//!   outlives any communicator), so the pointers stay valid;
//! * every call passes pointers that live for the call: the unique id and the communicator
//!   by value or as out-parameters on our stack, and device buffers that ONNX Runtime
//!   allocated for the kernel's input and output (the output requested by the kernel with the
//!   size the collective writes) with ORT's compute stream for that kernel;
//! * a [`Comm`] is used from one thread at a time (it sits behind a `Mutex`), as NCCL requires
//!   of a communicator, and destroyed once, on drop.

#![allow(unsafe_code)]

use cudarc::nccl::sys::{
    cudaStream_t, ncclComm_t, ncclDataType_t, ncclRedOp_t, ncclResult_t, ncclUniqueId,
};
use std::ffi::{CStr, c_char, c_int, c_void};
use std::path::{Path, PathBuf};
use std::sync::Arc;

type GetVersion = unsafe extern "C" fn(*mut c_int) -> ncclResult_t;
type GetUniqueId = unsafe extern "C" fn(*mut ncclUniqueId) -> ncclResult_t;
type CommInitRank =
    unsafe extern "C" fn(*mut ncclComm_t, c_int, ncclUniqueId, c_int) -> ncclResult_t;
type CommDestroy = unsafe extern "C" fn(ncclComm_t) -> ncclResult_t;
type GetErrorString = unsafe extern "C" fn(ncclResult_t) -> *const c_char;
type AllReduce = unsafe extern "C" fn(
    *const c_void,
    *mut c_void,
    usize,
    ncclDataType_t,
    ncclRedOp_t,
    ncclComm_t,
    cudaStream_t,
) -> ncclResult_t;
type AllGather = unsafe extern "C" fn(
    *const c_void,
    *mut c_void,
    usize,
    ncclDataType_t,
    ncclComm_t,
    cudaStream_t,
) -> ncclResult_t;

/// The NCCL library, opened from a path, with the entry points this crate calls.
pub struct NcclLib {
    get_version: GetVersion,
    get_unique_id: GetUniqueId,
    comm_init_rank: CommInitRank,
    comm_destroy: CommDestroy,
    get_error_string: GetErrorString,
    all_reduce: AllReduce,
    all_gather: AllGather,
    path: PathBuf,
}

impl std::fmt::Debug for NcclLib {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NcclLib({})", self.path.display())
    }
}

/// The opaque 128-byte id with which the ranks of one NCCL communicator find each other.
#[derive(Clone, Copy)]
pub struct UniqueId(ncclUniqueId);

impl UniqueId {
    /// Its bytes, to send to the other ranks.
    pub fn to_bytes(&self) -> [u8; 128] {
        self.0.internal.map(|c| c as u8)
    }

    /// The id from bytes a rank received.
    pub fn from_bytes(bytes: [u8; 128]) -> UniqueId {
        UniqueId(ncclUniqueId {
            internal: bytes.map(|b| b as c_char),
        })
    }
}

impl NcclLib {
    /// Opens NCCL at `path` and looks up its entry points.
    ///
    /// # Errors
    /// A message naming the file when it cannot be opened or lacks an entry point.
    pub fn load(path: &Path) -> Result<Arc<NcclLib>, String> {
        // SAFETY: opening a C library (see the module documentation).
        let library = unsafe { libloading::Library::new(path) }
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        // NCCL is never unloaded: `ncclGetUniqueId` starts a bootstrap thread inside it that
        // outlives any communicator, and closing the library under it crashes the process.
        // The leaked handle keeps the function pointers below valid for the process's life.
        let library: &'static libloading::Library = Box::leak(Box::new(library));
        let missing = |name: &str, e: libloading::Error| {
            format!(
                "{} lacks {name} ({e}): is it NCCL? Install it with `pip install {}`",
                path.display(),
                crate::dist::launch::NCCL_PACKAGE
            )
        };
        macro_rules! symbol {
            ($name:literal, $ty:ty) => {{
                // SAFETY: the symbol is read as its `nccl.h` declaration's type; the library
                // stays open for the life of the process.
                let s: Result<libloading::Symbol<'_, $ty>, _> =
                    unsafe { library.get(concat!($name, "\0").as_bytes()) };
                *s.map_err(|e| missing($name, e))?
            }};
        }
        Ok(Arc::new(NcclLib {
            get_version: symbol!("ncclGetVersion", GetVersion),
            get_unique_id: symbol!("ncclGetUniqueId", GetUniqueId),
            comm_init_rank: symbol!("ncclCommInitRank", CommInitRank),
            comm_destroy: symbol!("ncclCommDestroy", CommDestroy),
            get_error_string: symbol!("ncclGetErrorString", GetErrorString),
            all_reduce: symbol!("ncclAllReduce", AllReduce),
            all_gather: symbol!("ncclAllGather", AllGather),
            path: path.to_path_buf(),
        }))
    }

    /// Where it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn check(&self, what: &str, r: ncclResult_t) -> Result<(), String> {
        if r == ncclResult_t::ncclSuccess {
            return Ok(());
        }
        // SAFETY: ncclGetErrorString returns a static NUL-terminated string for any result.
        let text = unsafe {
            let p = (self.get_error_string)(r);
            if p.is_null() {
                String::new()
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        };
        Err(format!("{what}: {r:?} ({text})"))
    }

    /// NCCL's version code (e.g. 23203 for 2.32.3).
    ///
    /// # Errors
    /// NCCL's message.
    pub fn version(&self) -> Result<i32, String> {
        let mut v: c_int = 0;
        // SAFETY: an out-parameter on our stack.
        let r = unsafe { (self.get_version)(&mut v) };
        self.check("ncclGetVersion", r)?;
        Ok(v)
    }

    /// A fresh unique id (rank 0 makes it and sends it to the others).
    ///
    /// # Errors
    /// NCCL's message (e.g. no network interface for its bootstrap).
    pub fn unique_id(&self) -> Result<UniqueId, String> {
        let mut id = ncclUniqueId { internal: [0; 128] };
        // SAFETY: an out-parameter on our stack.
        let r = unsafe { (self.get_unique_id)(&mut id) };
        self.check("ncclGetUniqueId", r)?;
        Ok(UniqueId(id))
    }

    /// Joins the communicator `id` as `rank` of `world_size`, on the calling thread's current
    /// CUDA device. Blocks until every rank joined.
    ///
    /// # Errors
    /// NCCL's message (no GPU, a rank that never joins, …).
    pub fn init_rank(
        self: &Arc<Self>,
        world_size: usize,
        id: UniqueId,
        rank: usize,
    ) -> Result<Comm, String> {
        let n = c_int::try_from(world_size).map_err(|_| format!("world size {world_size}"))?;
        let r = c_int::try_from(rank).map_err(|_| format!("rank {rank}"))?;
        let mut raw: ncclComm_t = std::ptr::null_mut();
        // SAFETY: an out-parameter on our stack; the id is passed by value.
        let res = unsafe { (self.comm_init_rank)(&mut raw, n, id.0, r) };
        self.check("ncclCommInitRank", res)?;
        Ok(Comm {
            raw,
            lib: self.clone(),
        })
    }
}

/// One rank's NCCL communicator.
pub struct Comm {
    raw: ncclComm_t,
    lib: Arc<NcclLib>,
}

// SAFETY: an ncclComm_t may be used from any thread, one call at a time; `Comm` is only
// reached through a `Mutex` (see `super::NcclWorld`).
unsafe impl Send for Comm {}

/// A float32 device buffer of ONNX Runtime's, and the CUDA stream its kernel runs on.
#[derive(Clone, Copy, Debug)]
pub struct DeviceF32 {
    /// The input's device pointer.
    pub send: *const c_void,
    /// The output's device pointer.
    pub recv: *mut c_void,
    /// Values in the input.
    pub count: usize,
    /// ORT's compute stream (`cudaStream_t`).
    pub stream: *mut c_void,
}

impl Comm {
    /// Enqueues the sum of `buf.send` over the ranks into `buf.recv` (both `count` values) on
    /// `buf.stream`.
    ///
    /// # Errors
    /// NCCL's message.
    pub fn all_reduce_sum(&mut self, buf: DeviceF32) -> Result<(), String> {
        // SAFETY: the kernel passes ORT-allocated device buffers of `count` values each (the
        // output was requested with the input's shape) and ORT's stream for this kernel.
        let r = unsafe {
            (self.lib.all_reduce)(
                buf.send,
                buf.recv,
                buf.count,
                ncclDataType_t::ncclFloat32,
                ncclRedOp_t::ncclSum,
                self.raw,
                buf.stream.cast(),
            )
        };
        self.lib.check("ncclAllReduce", r)
    }

    /// Enqueues the rank-ordered concatenation of every rank's `buf.send` (`count` values)
    /// into `buf.recv` (`count` × world size values) on `buf.stream`.
    ///
    /// # Errors
    /// NCCL's message.
    pub fn all_gather(&mut self, buf: DeviceF32) -> Result<(), String> {
        // SAFETY: as in all_reduce_sum; the output was requested with axis 0 × world size.
        let r = unsafe {
            (self.lib.all_gather)(
                buf.send,
                buf.recv,
                buf.count,
                ncclDataType_t::ncclFloat32,
                self.raw,
                buf.stream.cast(),
            )
        };
        self.lib.check("ncclAllGather", r)
    }
}

impl Drop for Comm {
    fn drop(&mut self) {
        // SAFETY: the communicator was created by ncclCommInitRank and is destroyed once.
        unsafe {
            let _ = (self.lib.comm_destroy)(self.raw);
        }
    }
}
