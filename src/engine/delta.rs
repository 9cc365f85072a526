//! zstd deltas: the target compressed with the source as a reference prefix (what
//! `zstd --patch-from` does), at a high level with long-distance matching so that moved data
//! far apart is still found. The window covers source and target so every match is reachable.

use zstd::zstd_safe::{self, CCtx, CParameter, DCtx, DParameter};

use super::error::{EngineError, Result};

/// `zstd -19`: the measured sweet spot for patch size against time (PIPELINE.md).
pub const DELTA_LEVEL: i32 = 19;
/// zstd's largest window on 64-bit targets; decoders accept any frame up to it.
const MAX_WINDOW_LOG: u32 = 31;
const MIN_WINDOW_LOG: u32 = 10;

fn zstd_error(what: &str, code: zstd_safe::ErrorCode) -> EngineError {
    EngineError::Invalid(format!("{what}: {}", zstd_safe::get_error_name(code)))
}

fn window_log(total: usize) -> u32 {
    let bits = usize::BITS - total.max(1).saturating_sub(1).leading_zeros();
    bits.clamp(MIN_WINDOW_LOG, MAX_WINDOW_LOG)
}

/// One zstd frame that rebuilds `target` from `source`.
pub fn encode(source: &[u8], target: &[u8], level: i32) -> Result<Vec<u8>> {
    let mut cctx = CCtx::create();
    let set = |cctx: &mut CCtx, p| cctx.set_parameter(p).map(|_| ()).map_err(|c| zstd_error("zstd parameter", c));
    set(&mut cctx, CParameter::CompressionLevel(level))?;
    set(&mut cctx, CParameter::WindowLog(window_log(source.len() + target.len())))?;
    set(&mut cctx, CParameter::EnableLongDistanceMatching(true))?;
    set(&mut cctx, CParameter::ChecksumFlag(true))?;
    cctx.ref_prefix(source).map_err(|c| zstd_error("zstd prefix", c))?;
    let mut out = Vec::with_capacity(zstd_safe::compress_bound(target.len()));
    cctx.compress2(&mut out, target).map_err(|c| zstd_error("zstd delta", c))?;
    Ok(out)
}

/// Applies a frame made by `encode`; `out_len` is the expected output size.
pub fn decode(source: &[u8], frame: &[u8], out_len: usize) -> Result<Vec<u8>> {
    let corrupt = |c| EngineError::Corrupt(format!("delta frame: {}", zstd_safe::get_error_name(c)));
    let mut dctx = DCtx::create();
    dctx.set_parameter(DParameter::WindowLogMax(MAX_WINDOW_LOG)).map_err(corrupt)?;
    dctx.ref_prefix(source).map_err(corrupt)?;
    let mut out = Vec::with_capacity(out_len);
    dctx.decompress(&mut out, frame).map_err(corrupt)?;
    if out.len() != out_len {
        return Err(EngineError::Corrupt(format!("delta frame gave {} bytes, expected {out_len}", out.len())));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delta_rebuilds_the_target_and_is_small_for_a_small_edit() {
        let source: Vec<u8> = (0..200_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        let mut target = source.clone();
        target[1000..1010].copy_from_slice(b"0123456789");
        target.extend_from_slice(b"appended tail");
        let frame = encode(&source, &target, 19).unwrap();
        assert!(frame.len() < 500, "delta of a 10-byte edit is {} bytes", frame.len());
        assert_eq!(decode(&source, &frame, target.len()).unwrap(), target);
    }
}
