//! zstd deltas: the target compressed with the source as a reference prefix (what
//! `zstd --patch-from` does), at a high level with long-distance matching so that moved data
//! far apart is still found. The window covers source and target so every match is reachable.

use zstd::zstd_safe::{self, CCtx, CParameter, DCtx, DParameter};

use super::error::{EngineError, Result};

/// `zstd -19`: on pygame 2.6.0→2.6.1 level 22 saved 0.02 % of the patch; 19 is the sweet spot
/// of size against time.
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

/// Largest source a bsdiff delta is made against: qbsdiff's suffix array and the copies of
/// source and target take about 9× the source in memory (PIPELINE.md: ≤ 64 MiB).
pub const BSDIFF_MAX_SOURCE: usize = 64 << 20;
const BSDIFF_MAGIC: &[u8; 8] = b"BSDIFF40";
const BSDIFF_HEADER: usize = 32;

/// Whether `bytes` start like an executable or shared library (ELF, PE, Mach-O): the files whose
/// rebuilds shift addresses everywhere, where bsdiff's byte-wise differences beat zstd.
pub fn looks_executable(bytes: &[u8]) -> bool {
    const MAGICS: [&[u8]; 6] = [
        b"\x7fELF",
        b"MZ",
        &[0xfe, 0xed, 0xfa, 0xce],
        &[0xfe, 0xed, 0xfa, 0xcf],
        &[0xce, 0xfa, 0xed, 0xfe],
        &[0xcf, 0xfa, 0xed, 0xfe],
    ];
    MAGICS.iter().any(|m| bytes.starts_with(m))
}

/// A bsdiff delta: a standard BSDIFF40 patch (docs/FORMAT.md), any bspatch applies it. Its
/// bzip2 blocks were measured against the same streams stored raw in one zstd -19 frame on
/// panda3d 1.10.15→16: smaller on the large libraries (the diff block is mostly zeros, which
/// bzip2's block sort packs well) and faster to write, so the standard layout stays.
pub fn bsdiff_encode(source: &[u8], target: &[u8]) -> Result<Vec<u8>> {
    if source.len() > BSDIFF_MAX_SOURCE {
        return Err(EngineError::Invalid(format!("bsdiff source of {} bytes is too large", source.len())));
    }
    let mut patch = Vec::new();
    qbsdiff::Bsdiff::new(source, target)
        .compression_level(9)
        .compare(std::io::Cursor::new(&mut patch))
        .map_err(|e| EngineError::Invalid(format!("bsdiff: {e}")))?;
    Ok(patch)
}

fn le_u64(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(b)
}

/// bsdiff's signed 64-bit integers: magnitude in the low 63 bits, sign in the top bit.
fn offtin(bytes: &[u8]) -> i64 {
    let x = le_u64(bytes);
    let magnitude = (x & !(1 << 63)) as i64;
    if x >> 63 == 1 {
        -magnitude
    } else {
        magnitude
    }
}

/// Applies a patch made by [`bsdiff_encode`]; `out_len` is the expected output size. Every
/// length is checked against `out_len` before anything is allocated from it.
pub fn bsdiff_decode(source: &[u8], frame: &[u8], out_len: usize) -> Result<Vec<u8>> {
    use std::io::Read;
    let corrupt = |what: &str| EngineError::Corrupt(format!("bsdiff delta: {what}"));
    if frame.len() < BSDIFF_HEADER || &frame[..8] != BSDIFF_MAGIC {
        return Err(corrupt("not a BSDIFF40 patch"));
    }
    let (ctrl_size, diff_size, new_size) = (offtin(&frame[8..16]), offtin(&frame[16..24]), offtin(&frame[24..32]));
    if new_size != out_len as i64 || ctrl_size < 0 || diff_size < 0 {
        return Err(corrupt("lengths do not match the segment"));
    }
    let ctrl_end = (BSDIFF_HEADER as u64).saturating_add(ctrl_size as u64);
    let diff_end = ctrl_end.saturating_add(diff_size as u64);
    if diff_end > frame.len() as u64 {
        return Err(corrupt("truncated"));
    }
    let (ctrl_end, diff_end) = (ctrl_end as usize, diff_end as usize);
    // Each control triple (24 bytes) adds or copies at least one byte, except an empty last
    // one; the diff block holds the added bytes, the extra block the copied ones.
    let new_size = new_size as u64;
    let unpack = |block: &[u8], limit: u64| -> Result<Vec<u8>> {
        let mut plain = Vec::new();
        bzip2::read::BzDecoder::new(block)
            .take(limit + 1)
            .read_to_end(&mut plain)
            .map_err(|_| corrupt("a block is not bzip2"))?;
        if plain.len() as u64 > limit {
            return Err(corrupt("a block is larger than the segment allows"));
        }
        Ok(plain)
    };
    let ctrl = unpack(&frame[BSDIFF_HEADER..ctrl_end], 24 * (new_size + 1))?;
    let diff = unpack(&frame[ctrl_end..diff_end], new_size)?;
    let extra = unpack(&frame[diff_end..], new_size)?;
    if ctrl.len() % 24 != 0 {
        return Err(corrupt("the control block is not whole triples"));
    }
    let (mut out, mut d, mut e, mut old) = (Vec::with_capacity(out_len), 0usize, 0usize, 0i64);
    for triple in ctrl.chunks_exact(24) {
        let (add, copy, seek) = (offtin(&triple[..8]), offtin(&triple[8..16]), offtin(&triple[16..24]));
        let (Ok(add), Ok(copy)) = (usize::try_from(add), usize::try_from(copy)) else {
            return Err(corrupt("negative length"));
        };
        if add > diff.len() - d || copy > extra.len() - e {
            return Err(corrupt("control runs past its blocks"));
        }
        // Source bytes outside the source count as zero (bspatch's rule).
        for (i, &delta) in diff[d..d + add].iter().enumerate() {
            let at = old.checked_add(i as i64).and_then(|a| usize::try_from(a).ok());
            out.push(delta.wrapping_add(at.and_then(|a| source.get(a)).copied().unwrap_or(0)));
        }
        out.extend_from_slice(&extra[e..e + copy]);
        d += add;
        e += copy;
        old = old
            .checked_add(add as i64)
            .and_then(|o| o.checked_add(seek))
            .ok_or_else(|| corrupt("source position overflows"))?;
    }
    if out.len() != out_len || d != diff.len() || e != extra.len() {
        return Err(corrupt("output size does not match"));
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

    /// An "executable" whose rebuild shifts every address a little: bsdiff's home ground.
    fn shifted_binary() -> (Vec<u8>, Vec<u8>) {
        let mut source = b"\x7fELF".to_vec();
        let mut target = b"\x7fELF".to_vec();
        for i in 0..50_000u32 {
            let word = i.wrapping_mul(2654435761) >> 7;
            source.extend_from_slice(&(word & 0xffff_f000).to_le_bytes());
            target.extend_from_slice(&((word & 0xffff_f000) + 0x40).to_le_bytes());
        }
        (source, target)
    }

    #[test]
    fn a_bsdiff_delta_rebuilds_the_target_and_beats_zstd_on_shifted_addresses() {
        let (source, target) = shifted_binary();
        assert!(looks_executable(&target) && !looks_executable(b"plain text"));
        let frame = bsdiff_encode(&source, &target).unwrap();
        assert_eq!(bsdiff_decode(&source, &frame, target.len()).unwrap(), target);
        let zstd = encode(&source, &target, 19).unwrap();
        assert!(frame.len() * 2 < zstd.len(), "bsdiff {} bytes, zstd {} bytes", frame.len(), zstd.len());
    }

    #[test]
    fn a_bsdiff_delta_with_lengths_that_disagree_is_refused() {
        let (source, target) = shifted_binary();
        let frame = bsdiff_encode(&source, &target).unwrap();
        assert!(matches!(bsdiff_decode(&source, &frame, target.len() + 1), Err(EngineError::Corrupt(_))));
        assert!(matches!(
            bsdiff_decode(&source, &frame[..frame.len() / 2], target.len()),
            Err(EngineError::Corrupt(_))
        ));
        let zstd_frame = encode(&source, &target, 3).unwrap();
        // A header whose blocks are cut off, and a control block that is not bzip2.
        assert!(matches!(bsdiff_decode(&source, &frame[..40], target.len()), Err(EngineError::Corrupt(_))));
        let mut garbled = frame.clone();
        garbled[32..36].copy_from_slice(b"XXXX");
        assert!(matches!(bsdiff_decode(&source, &garbled, target.len()), Err(EngineError::Corrupt(_))));
        assert!(matches!(bsdiff_decode(&source, &zstd_frame, target.len()), Err(EngineError::Corrupt(_))));
    }
}
