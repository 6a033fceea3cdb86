//! JPEG decoding through libjpeg-turbo's decoder (vendored and built by
//! `mozjpeg-sys`, SIMD included), at 1/1, 1/2, 1/4 or 1/8 scale in the DCT
//! domain: shrink-on-load.
//!
//! Why libjpeg-turbo and not a pure-Rust decoder: measured on the bench
//! corpus (docs/images.md, "Shrink-on-load"), shrinking on load it needs 1.55x
//! less CPU than jpeg-decoder's `scale` (less on every file), and at full
//! size it is as fast as zune-jpeg, which cannot shrink on load at all.
//! One decoder for every JPEG, and the most battle-tested one.
//!
//! Why this module has `unsafe`: libjpeg reports damaged data as
//! *warnings* and carries on (grey rows after a truncated scan, garbage
//! blocks after a bad Huffman code), and the mozjpeg crate silences
//! warnings. sluice must refuse such input rather than serve a silently
//! corrupted picture, so this module installs its own error manager
//! (`jpeg_std_error` is FFI) whose warning hook turns data-loss warnings
//! into errors, and reads the message code and text through libjpeg's
//! `err` pointer. Errors unwind out of libjpeg (the `C-unwind` ABI, as the
//! mozjpeg crate does itself) and are caught here, in the one function
//! that calls into it.
//!
//! The same hook watches the decode while libjpeg runs: libjpeg reports
//! every start of scan as a trace message, so a progressive file with
//! more than [`MAX_SCANS`] scans (a "scan bomb": each scan is a pass over
//! every block, so a small file can cost minutes) fails, and a cancelled
//! job (`--processing-timeout`) stops at the next scan or row band rather
//! than after the whole decode.

use std::cell::Cell;
use std::os::raw::c_int;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};

use mozjpeg::decompress::DecompressStarted;
use mozjpeg::{Decompress, Format};
use mozjpeg_sys as ffi;

/// A decoded image: 8-bit gray (1 channel) or RGB (3).
#[derive(Debug, Clone)]
pub struct RawImage {
    pub pixels: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub channels: u8,
}

/// More scans than any encoder writes (libjpeg's own progressive script
/// has 10, mozjpeg's a few more); djpeg's `-maxscans` guards the same way.
pub const MAX_SCANS: u32 = 500;

/// Rows decoded between two looks at the cancel flag.
const ROWS_PER_CHECK: usize = 64;

/// Why a decode stopped.
#[derive(Debug)]
pub enum Failure {
    /// Damaged or unsupported data, with libjpeg's reason.
    Corrupt(String),
    /// The job was cancelled (its processing timeout passed).
    Cancelled,
}

/// Decode a whole JPEG at `1/shrink` of its size (`shrink` is 1, 2, 4 or 8)
/// into gray or RGB. `adobe` says the file has an Adobe APP14 segment: its
/// CMYK is stored inverted (as Photoshop writes it). `expect` is the size
/// the header had when probed; a different one is refused. `cancelled` is
/// looked at during the decode.
pub fn decode(
    data: &[u8],
    shrink: u32,
    adobe: bool,
    expect: (u32, u32),
    cancelled: &AtomicBool,
) -> Result<RawImage, Failure> {
    let _watch = Watch::start(cancelled);
    match catch_unwind(AssertUnwindSafe(|| {
        decode_unguarded(data, shrink, adobe, expect, cancelled)
    })) {
        Ok(result) => result,
        Err(payload) => Err(match payload.downcast::<Failure>() {
            Ok(failure) => *failure,
            // Not ours (an allocation failure, a bug): let the worker's
            // own catch_unwind report it.
            Err(other) => resume_unwind(other),
        }),
    }
}

/// What the warning hook needs while this thread decodes: scans seen so
/// far and the job's cancel flag. A thread-local, because libjpeg calls
/// the hook with nothing of ours; set for exactly one decode by
/// [`Watch::start`] and cleared when that guard drops (unwinding too).
#[derive(Clone, Copy)]
struct WatchState {
    scans: u32,
    cancelled: *const AtomicBool,
}

thread_local! {
    static WATCH: Cell<Option<WatchState>> = const { Cell::new(None) };
}

struct Watch;

impl Watch {
    fn start(cancelled: &AtomicBool) -> Watch {
        WATCH.set(Some(WatchState {
            scans: 0,
            cancelled,
        }));
        Watch
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        WATCH.set(None);
    }
}

/// Called from the hook at every start of scan.
fn scan_started() {
    let Some(mut state) = WATCH.get() else {
        return;
    };
    state.scans += 1;
    WATCH.set(Some(state));
    if state.scans > MAX_SCANS {
        resume_unwind(Box::new(Failure::Corrupt(format!(
            "more than {MAX_SCANS} scans"
        ))));
    }
    // SAFETY: the pointer comes from the `&AtomicBool` that `decode` holds
    // for as long as the Watch (and so this state) exists.
    if unsafe { &*state.cancelled }.load(Ordering::Relaxed) {
        resume_unwind(Box::new(Failure::Cancelled));
    }
}

fn decode_unguarded(
    data: &[u8],
    shrink: u32,
    adobe: bool,
    expect: (u32, u32),
    cancelled: &AtomicBool,
) -> Result<RawImage, Failure> {
    let io = |e: std::io::Error| Failure::Corrupt(e.to_string());
    let check = || match cancelled.load(Ordering::Relaxed) {
        true => Err(Failure::Cancelled),
        false => Ok(()),
    };
    let mut d = Decompress::with_err(strict_error_mgr())
        .from_mem(data)
        .map_err(io)?;
    if (d.width() as u64, d.height() as u64) != (u64::from(expect.0), u64::from(expect.1)) {
        return Err(Failure::Corrupt(
            "header changed between probe and decode".into(),
        ));
    }
    let numerator = match shrink {
        8 => 1,
        4 => 2,
        2 => 4,
        _ => 8,
    };
    d.scale(numerator);
    let (pixels, width, height, channels) = match d.image().map_err(io)? {
        Format::RGB(s) => read_in_bands(s, 3, &check)?,
        Format::Gray(s) => read_in_bands(s, 1, &check)?,
        Format::CMYK(mut s) => {
            // Row by row, so no full-size CMYK copy exists beside the RGB.
            let (w, h) = (s.width(), s.height());
            let mut px = vec![0u8; w * h * 3];
            let mut row = vec![0u8; w * 4];
            for (y, out) in px.chunks_exact_mut(w * 3).enumerate() {
                if y % ROWS_PER_CHECK == 0 {
                    check()?;
                }
                s.read_scanlines_into(&mut row).map_err(io)?;
                cmyk_row_to_rgb(&row, out, adobe);
            }
            s.finish().map_err(io)?;
            (px, w, h, 3)
        }
    };
    Ok(RawImage {
        pixels,
        width: u32::try_from(width).map_err(|_| Failure::Corrupt("too wide".into()))?,
        height: u32::try_from(height).map_err(|_| Failure::Corrupt("too tall".into()))?,
        channels,
    })
}

/// Read a started decode whose output has `channels` per pixel, looking at
/// the cancel flag every [`ROWS_PER_CHECK`] rows.
fn read_in_bands(
    mut s: DecompressStarted<&[u8]>,
    channels: u8,
    check: &dyn Fn() -> Result<(), Failure>,
) -> Result<(Vec<u8>, usize, usize, u8), Failure> {
    let io = |e: std::io::Error| Failure::Corrupt(e.to_string());
    let (w, h) = (s.width(), s.height());
    let row = w * usize::from(channels);
    let mut px = vec![0u8; row * h];
    for band in px.chunks_mut(row * ROWS_PER_CHECK) {
        check()?;
        s.read_scanlines_into(band).map_err(io)?;
    }
    s.finish().map_err(io)?;
    Ok((px, w, h, channels))
}

/// CMYK to RGB, the naive way (R = (255-C)(255-K)/255), as ImageMagick
/// does without a CMYK profile; no crate here converts CMYK without a
/// colour-management engine. libjpeg hands back the samples as stored:
/// inverted (255 = no ink) in Adobe files, 0 = no ink otherwise.
pub fn cmyk_row_to_rgb(cmyk: &[u8], rgb: &mut [u8], inverted: bool) {
    for (p, out) in cmyk.chunks_exact(4).zip(rgb.chunks_exact_mut(3)) {
        let ink = |v: u8| if inverted { 255 - v } else { v };
        let k = 255 - u16::from(ink(p[3]));
        for (o, &c) in out.iter_mut().zip(&p[..3]) {
            *o = (((255 - u16::from(ink(c))) * k + 127) / 255) as u8;
        }
    }
}

/// libjpeg's standard error manager with two hooks replaced: fatal errors
/// unwind (instead of libjpeg's `exit()`), and warnings that mean lost or
/// invented pixels unwind too.
fn strict_error_mgr() -> ffi::jpeg_error_mgr {
    // SAFETY: jpeg_std_error only fills in the struct it is given; an
    // all-zero jpeg_error_mgr (null pointers, None hooks, zero counters) is
    // a valid value to hand it.
    let mut err: ffi::jpeg_error_mgr = unsafe { std::mem::zeroed() };
    // SAFETY: `err` is a live, valid jpeg_error_mgr (see above).
    unsafe { ffi::jpeg_std_error(&mut err) };
    err.error_exit = Some(fail);
    err.emit_message = Some(warn);
    // Level-1 trace messages include "start of scan", which the hook counts.
    err.trace_level = 1;
    err
}

/// Warnings that do not change a pixel: odd metadata or a scan script
/// libjpeg would not have chosen. Every other warning (premature end of
/// data, bad Huffman code, lost sync, extraneous bytes inside the scan
/// data) means the picture would be partly invented, so it fails.
const HARMLESS_WARNINGS: [ffi::J_MESSAGE_CODE; 4] = [
    ffi::JWRN_ADOBE_XFORM,
    ffi::JWRN_BOGUS_ICC,
    ffi::JWRN_JFIF_MAJOR,
    ffi::JWRN_BOGUS_PROGRESSION,
];

extern "C-unwind" fn warn(cinfo: &mut ffi::jpeg_common_struct, level: c_int) {
    // SAFETY: libjpeg calls this with the cinfo it was created with, whose
    // `err` is the error manager from strict_error_mgr, alive meanwhile.
    let code = unsafe { cinfo.err.as_ref() }.map_or(-1, |e| e.msg_code);
    if level >= 0 {
        // A trace message, not a warning.
        if code == ffi::JTRC_SOS {
            scan_started();
        }
        return;
    }
    if HARMLESS_WARNINGS.contains(&code) {
        return;
    }
    resume_unwind(Box::new(Failure::Corrupt(format!(
        "corrupt data: {}",
        message(cinfo)
    ))));
}

extern "C-unwind" fn fail(cinfo: &mut ffi::jpeg_common_struct) {
    resume_unwind(Box::new(Failure::Corrupt(message(cinfo))));
}

/// libjpeg's text for its last message ("Premature end of JPEG file").
fn message(cinfo: &mut ffi::jpeg_common_struct) -> String {
    // SAFETY: as in `warn`. format_message writes at most JMSG_LENGTH_MAX
    // (80) bytes, NUL included, into the buffer; mozjpeg-sys declares its
    // buffer parameter as `&[u8; 80]` although libjpeg writes to it, so it
    // is called through a `*mut u8` signature (same ABI).
    let Some(format) = (unsafe { cinfo.err.as_ref() }).and_then(|e| e.format_message) else {
        return "libjpeg error".into();
    };
    type WritingFormat = unsafe extern "C-unwind" fn(&mut ffi::jpeg_common_struct, *mut u8);
    // SAFETY: the same function, declared with the pointer it really takes.
    let format: WritingFormat = unsafe { std::mem::transmute(format) };
    let mut buffer = [0u8; 80];
    // SAFETY: `buffer` has the 80 bytes libjpeg writes at most.
    unsafe { format(cinfo, buffer.as_mut_ptr()) };
    let text = buffer.split(|&b| b == 0).next().unwrap_or_default();
    String::from_utf8_lossy(text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmyk_conversion_knows_which_way_ink_runs() {
        let mut rgb = [0u8; 3];
        for (cmyk, inverted, want) in [
            ([0, 0, 0, 0], false, [255, 255, 255]),
            ([255, 0, 0, 0], false, [0, 255, 255]),
            ([0, 0, 0, 255], false, [0, 0, 0]),
            ([255, 255, 255, 255], true, [255, 255, 255]),
            ([0, 255, 255, 255], true, [0, 255, 255]),
        ] {
            cmyk_row_to_rgb(&cmyk, &mut rgb, inverted);
            assert_eq!(rgb, want, "{cmyk:?} inverted={inverted}");
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let e = decode(
            b"\xFF\xD8\xFF\xE0not a jpeg at all",
            1,
            false,
            (1, 1),
            &AtomicBool::new(false),
        );
        assert!(matches!(e, Err(Failure::Corrupt(_))), "{e:?}");
    }
}
