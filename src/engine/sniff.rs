//! Recognises what the uploaded `native-build.tar` really is. A plain ustar tar is the contract;
//! gzip- or zstd-compressed tars are common mistakes that cost nothing to accept (with a
//! warning); anything else fails with the compat `fileReadFailed` fields.

use std::io::{self, Chain, Cursor, Read};

use super::error::{EngineError, IoContext, Result};

/// The name the compat exception gives the input as a whole.
pub const INPUT_NAME: &str = "native-build.tar";

const BLOCK: usize = 512;

/// How the tar arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrapping {
    Plain,
    Gzip,
    Zstd,
}

type Peeked<R> = Chain<Cursor<Vec<u8>>, R>;

/// Reads up to one tar block without consuming it from the stream's point of view.
fn peek<R: Read>(mut reader: R) -> io::Result<(Vec<u8>, Peeked<R>)> {
    let mut head = vec![0u8; BLOCK];
    let mut filled = 0;
    while filled < BLOCK {
        match reader.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    head.truncate(filled);
    Ok((head.clone(), Cursor::new(head).chain(reader)))
}

fn is_ustar(head: &[u8]) -> bool {
    head.len() == BLOCK && &head[257..262] == b"ustar"
}

/// A human name for what a non-tar input looks like, for `typeDetected`.
fn describe(head: &[u8]) -> &'static str {
    let starts = |magic: &[u8]| head.starts_with(magic);
    if head.is_empty() {
        "empty file"
    } else if starts(b"PK\x03\x04") || starts(b"PK\x05\x06") {
        "zip archive"
    } else if starts(&[0x1f, 0x8b]) {
        "gzip data"
    } else if starts(&[0x28, 0xb5, 0x2f, 0xfd]) {
        "zstd data"
    } else if starts(b"BZh") {
        "bzip2 data"
    } else if starts(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        "xz data"
    } else if starts(b"7z\xbc\xaf\x27\x1c") {
        "7-zip archive"
    } else if starts(b"\x7fELF") {
        "ELF executable"
    } else if starts(b"MZ") {
        "Windows executable"
    } else if head.len() < BLOCK && head.iter().all(|&b| b == 0) {
        "truncated data"
    } else if head.iter().all(|&b| b.is_ascii_graphic() || b.is_ascii_whitespace()) {
        "text"
    } else {
        "unknown data"
    }
}

fn not_a_tar(head: &[u8]) -> EngineError {
    EngineError::file_read_failed(INPUT_NAME, "tar", describe(head))
}

/// Wraps `reader` into a stream of plain tar bytes, or says why it is not a tar.
pub fn open_tar<'r, R: Read + Send + 'r>(reader: R) -> Result<(Box<dyn Read + Send + 'r>, Wrapping)> {
    let (head, stream) = peek(reader).ctx(|| format!("read {INPUT_NAME}"))?;
    if is_ustar(&head) {
        return Ok((Box::new(stream), Wrapping::Plain));
    }
    let (inner, wrapping): (Box<dyn Read + Send + 'r>, Wrapping) = if head.starts_with(&[0x1f, 0x8b]) {
        (Box::new(flate2::read::MultiGzDecoder::new(stream)), Wrapping::Gzip)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let decoder = zstd::stream::read::Decoder::new(stream).ctx(|| format!("read {INPUT_NAME}"))?;
        (Box::new(decoder), Wrapping::Zstd)
    } else {
        return Err(not_a_tar(&head));
    };
    // A compressed stream that does not decode or holds something else is not a tar either.
    let (inner_head, inner) = match peek(inner) {
        Ok(peeked) => peeked,
        Err(_) => return Err(not_a_tar(&head)),
    };
    if !is_ustar(&inner_head) {
        let what = match wrapping {
            Wrapping::Gzip => "gzip-compressed ",
            _ => "zstd-compressed ",
        };
        return Err(EngineError::file_read_failed(INPUT_NAME, "tar", format!("{what}{}", describe(&inner_head))));
    }
    Ok((Box::new(inner), wrapping))
}
