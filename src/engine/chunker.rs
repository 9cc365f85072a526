//! Content-defined chunking of file contents. The parameters are stored data: changing them (or
//! the `fastcdc` version, pinned exactly in Cargo.toml) changes every chunk id, so the golden
//! tests in tests/engine_chunking.rs pin the cut points.

use std::io::Read;

use fastcdc::v2020::StreamCDC;

use super::error::{EngineError, Result};

pub const MIN_CHUNK: usize = 16 * 1024;
pub const AVG_CHUNK: usize = 64 * 1024;
pub const MAX_CHUNK: usize = 256 * 1024;

/// Splits one file's contents into chunks (FastCDC 2020, normalization level 1). A new chunker
/// per file gives the "cut at every file start" rule. Memory: one `MAX_CHUNK` buffer.
pub fn chunks<R: Read>(contents: R) -> impl Iterator<Item = Result<Vec<u8>>> {
    StreamCDC::new(contents, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK).map(|chunk| {
        chunk.map(|c| c.data).map_err(|e| match e {
            fastcdc::v2020::Error::IoError(source) => EngineError::Io { context: "read tar entry".into(), source },
            other => EngineError::Invalid(format!("chunking: {other}")),
        })
    })
}
