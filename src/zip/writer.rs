//! The zip format, written by hand as a sans-IO streaming encoder.
//!
//! It owns the bytes of every record (APPNOTE 6.3.10): local file headers,
//! entry data (stored, or raw DEFLATE through flate2), data descriptors, the
//! central directory and the (ZIP64) end records, and the exact length of an
//! archive whose entries are all known in advance. It does no I/O: callers
//! hand in chunks and get back `Bytes` to send, so it works the same behind
//! an HTTP body, a file, or a test. States are described in LIFECYCLE.md.
//!
//! Why not async_zip's `write_entry_stream` (checked against 0.0.19, the
//! newest release): it always puts a ZIP64 extra field on streamed entries
//! (ZIP64 when not needed), writes 0xFFFFFFFF into the 32-bit sizes of the
//! data descriptor of such entries (Info-ZIP reports "overlapped
//! components"; rs-async-zip #147/#158), swaps compressed and uncompressed
//! sizes in the central directory with `force_no_zip64()`, and cannot write a
//! local header with known size and CRC (no data descriptor), which is what
//! makes a Content-Length and byte ranges possible.
//! `bench/zip/async-zip-evidence` shows Python zipfile, 7z and streaming
//! bsdtar rejecting its output (RESULT.txt there). The records are small and well
//! specified; writing them here is less code than working around those.
//!
//! Every entry carries Info-ZIP's extended timestamp (`UT`, the exact Unix
//! mtime, which readers prefer to the DOS time's two-second local time);
//! with it a stored entry's records are laid out byte for byte as nginx
//! mod_zip lays them out, so offsets in mod_zip's tests hold for sluice too.
//! A name in a legacy charset (mod_zip's `X-Archive-Charset`) is written
//! without the UTF-8 flag, with the UTF-8 name in a Unicode Path field.

use bytes::{BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, FlushCompress, Status};

use crate::error::{Error, ErrorKind};

const LOCAL_HEADER_SIG: u32 = 0x0403_4b50;
const DATA_DESCRIPTOR_SIG: u32 = 0x0807_4b50;
const CENTRAL_HEADER_SIG: u32 = 0x0201_4b50;
const ZIP64_END_SIG: u32 = 0x0606_4b50;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const END_SIG: u32 = 0x0605_4b50;

const LOCAL_HEADER_LEN: u64 = 30;
const CENTRAL_HEADER_LEN: u64 = 46;
const END_LEN: u64 = 22;
const ZIP64_END_LEN: u64 = 56;
const ZIP64_LOCATOR_LEN: u64 = 20;
const ZIP64_EXTRA_ID: u16 = 0x0001;
/// Info-ZIP extended timestamp ("UT"): flags (bit 0 mtime, bit 1 atime),
/// then the times as signed 32-bit Unix seconds.
const TIMESTAMP_EXTRA_ID: u16 = 0x5455;
/// Local: mtime and atime (both the entry's mtime); central: mtime only.
const TIMESTAMP_LOCAL_LEN: u64 = 4 + 1 + 4 + 4;
const TIMESTAMP_CENTRAL_LEN: u64 = 4 + 1 + 4;
/// Info-ZIP Unicode Path ("up", APPNOTE 4.6.9): version 1, the CRC-32 of
/// the header's name field, then the UTF-8 name.
const UNICODE_PATH_EXTRA_ID: u16 = 0x7075;
const UNICODE_PATH_FIXED_LEN: u64 = 4 + 1 + 4;

/// A 32-bit size or offset field holds this when the real value is in the
/// ZIP64 extra field; values at or above it need ZIP64.
const MAX_32: u64 = 0xFFFF_FFFF;
/// The entry count of the classic end record holds this when the real count
/// is in the ZIP64 end record.
const MAX_16: u64 = 0xFFFF;

/// General purpose flag bit 3: CRC and sizes follow the data in a descriptor.
const FLAG_DATA_DESCRIPTOR: u16 = 1 << 3;
/// General purpose flag bit 11: the name is UTF-8.
const FLAG_UTF8: u16 = 1 << 11;
/// "Made by" Unix (3), spec 4.5, so that unzip applies the file mode below.
const MADE_BY: u16 = (3 << 8) | 45;
/// Regular file, rw-r--r--, in the high 16 bits (Unix mode).
const EXTERNAL_ATTRS: u32 = 0o100_644 << 16;
/// A directory (a name ending in `/`): drwxr-xr-x, and the MS-DOS
/// directory bit (0x10) in the low byte for readers that look there.
const DIRECTORY_ATTRS: u32 = (0o040_755 << 16) | 0x10;

/// Size of the output chunks the central directory is cut into.
const OUT_CHUNK: usize = 64 * 1024;

/// How an entry's bytes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Store,
    Deflate,
}

impl Method {
    fn code(self) -> u16 {
        match self {
            Method::Store => 0,
            Method::Deflate => 8,
        }
    }
}

/// What is known about an entry before its first byte is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sizes {
    /// Nothing: CRC and sizes go into a data descriptor.
    Unknown,
    /// The uncompressed length (declared, or the origin's Content-Length).
    /// It decides ZIP64, and the data must match it.
    Length(u64),
    /// Length and CRC-32 both known: a stored entry then needs no data
    /// descriptor, and its records have a length known in advance.
    Known { size: u64, crc32: u32 },
}

impl Sizes {
    pub fn length(self) -> Option<u64> {
        match self {
            Sizes::Unknown => None,
            Sizes::Length(n) | Sizes::Known { size: n, .. } => Some(n),
        }
    }
}

/// An entry's modification time, as the MS-DOS date and time of the
/// headers (local time by convention; sluice writes UTC) and as the Unix
/// seconds of the extended timestamp field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DosDateTime {
    pub date: u16,
    pub time: u16,
    /// Unix seconds, clamped to what the field holds (1980 to 2038).
    pub unix: i32,
}

/// 1980-01-01 00:00:00 UTC in Unix seconds.
const DOS_EPOCH_UNIX: i64 = 315_532_800;

impl DosDateTime {
    /// 1980-01-01 00:00:00, the earliest time the format can hold.
    pub const EPOCH: DosDateTime = DosDateTime {
        date: (1 << 5) | 1,
        time: 0,
        unix: DOS_EPOCH_UNIX as i32,
    };

    /// From seconds since the Unix epoch (UTC), clamped to 1980..=2107
    /// (the DOS fields) and 1980..=2038 (the Unix field).
    pub fn from_unix(secs: i64) -> Self {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        if y < 1980 {
            return Self::EPOCH;
        }
        let unix = secs.clamp(DOS_EPOCH_UNIX, i64::from(i32::MAX)) as i32;
        if y > 2107 {
            return DosDateTime {
                date: (127 << 9) | (12 << 5) | 31,
                time: (23 << 11) | (59 << 5) | 29,
                unix,
            };
        }
        let (h, min, s) = (rem / 3600, (rem / 60) % 60, rem % 60);
        DosDateTime {
            date: (((y - 1980) as u16) << 9) | ((m as u16) << 5) | d as u16,
            time: ((h as u16) << 11) | ((min as u16) << 5) | (s as u16 / 2),
            unix,
        }
    }

    pub fn from_system_time(t: std::time::SystemTime) -> Self {
        match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => Self::from_unix(i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2)),
            Err(_) => Self::EPOCH,
        }
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Everything needed to write an entry's local header.
#[derive(Debug, Clone)]
pub struct EntrySpec {
    /// Already sanitised (see `names`), UTF-8, `/`-separated.
    pub name: String,
    /// The name's bytes in a legacy charset, when the manifest asked for
    /// one; `None` writes `name` with the UTF-8 flag.
    pub legacy_name: Option<LegacyName>,
    pub method: Method,
    pub modified: DosDateTime,
    pub sizes: Sizes,
}

/// A name written in a legacy charset (cp866, Shift_JIS…), for archivers
/// that ignore the UTF-8 flag: the header holds `bytes` without the flag,
/// and, when `unicode_path` is set, a Unicode Path extra field holds the
/// UTF-8 name for the readers that know it (Info-ZIP, 7-Zip, libarchive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyName {
    pub bytes: Box<[u8]>,
    pub unicode_path: bool,
}

impl LegacyName {
    /// The bytes of the header's name field: the legacy bytes, or `name`.
    pub fn header_name<'a>(legacy: Option<&'a LegacyName>, name: &'a str) -> &'a [u8] {
        legacy.map_or(name.as_bytes(), |l| &l.bytes)
    }

    /// The UTF-8 name for a Unicode Path field, if one is written.
    pub fn unicode_path<'a>(legacy: Option<&'a LegacyName>, name: &'a str) -> Option<&'a str> {
        legacy.filter(|l| l.unicode_path).map(|_| name)
    }
}

/// What the length of an entry's records depends on, for archives whose
/// length is known in advance (see [`known_archive_len`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryLayout {
    /// Bytes of the header's name field.
    pub name_len: usize,
    /// Bytes of the UTF-8 name in a Unicode Path field, if there is one.
    pub unicode_path_len: Option<usize>,
    pub size: u64,
    /// Without a CRC the entry is followed by a data descriptor.
    pub crc_known: bool,
}

impl EntryLayout {
    /// A stored entry with a UTF-8 name and a known CRC.
    pub fn known(name_len: usize, size: u64) -> Self {
        EntryLayout {
            name_len,
            unicode_path_len: None,
            size,
            crc_known: true,
        }
    }

    fn zip64_sizes(&self) -> bool {
        self.size >= MAX_32
    }

    /// Length of the local header (before the entry's data).
    pub fn local_header_len(&self) -> u64 {
        LOCAL_HEADER_LEN
            + self.name_len as u64
            + if self.zip64_sizes() { 20 } else { 0 }
            + TIMESTAMP_LOCAL_LEN
            + self.unicode_path_extra_len()
    }

    fn unicode_path_extra_len(&self) -> u64 {
        unicode_path_extra_len(self.unicode_path_len)
    }

    /// Length of the data descriptor after the data (none with a CRC).
    pub fn descriptor_len(&self) -> u64 {
        match (self.crc_known, self.zip64_sizes()) {
            (true, _) => 0,
            (false, false) => 16,
            (false, true) => 24,
        }
    }
}

/// Largest raw-DEFLATE output for `n` input bytes: flate2's stored blocks
/// add 5 bytes per 16 KiB at worst, plus the final block.
fn deflate_bound(n: u64) -> u64 {
    n + (n / 16_384 + 1) * 5 + 64
}

impl EntrySpec {
    /// Does the local header need a ZIP64 extra field? Only when the entry
    /// may reach 4 GiB. An entry of unknown length is written without one and
    /// fails if it grows that large (see `EntryWriter::write`).
    fn zip64_local(&self) -> bool {
        match (self.sizes.length(), self.method) {
            (None, _) => false,
            (Some(n), Method::Store) => n >= MAX_32,
            (Some(n), Method::Deflate) => deflate_bound(n) >= MAX_32,
        }
    }

    fn uses_descriptor(&self) -> bool {
        !matches!(
            (self.sizes, self.method),
            (Sizes::Known { .. }, Method::Store)
        )
    }

    fn header_name(&self) -> &[u8] {
        LegacyName::header_name(self.legacy_name.as_ref(), &self.name)
    }

    fn unicode_path(&self) -> Option<&str> {
        LegacyName::unicode_path(self.legacy_name.as_ref(), &self.name)
    }
}

/// The extra fields every header of an entry carries besides ZIP64: the
/// timestamp, and the Unicode Path of a legacy-charset name.
fn put_name_and_time_extras(
    out: &mut BytesMut,
    modified: DosDateTime,
    header_name: &[u8],
    unicode_path: Option<&str>,
    local: bool,
) {
    out.put_u16_le(TIMESTAMP_EXTRA_ID);
    if local {
        out.put_u16_le((TIMESTAMP_LOCAL_LEN - 4) as u16);
        out.put_u8(0x03);
        out.put_i32_le(modified.unix);
        out.put_i32_le(modified.unix);
    } else {
        out.put_u16_le((TIMESTAMP_CENTRAL_LEN - 4) as u16);
        out.put_u8(0x03);
        out.put_i32_le(modified.unix);
    }
    if let Some(utf8) = unicode_path {
        out.put_u16_le(UNICODE_PATH_EXTRA_ID);
        out.put_u16_le((UNICODE_PATH_FIXED_LEN - 4) as u16 + utf8.len() as u16);
        out.put_u8(1);
        out.put_u32_le(crc32fast::hash(header_name));
        out.put_slice(utf8.as_bytes());
    }
}

/// Bytes of a Unicode Path extra field for a UTF-8 name of `len` bytes
/// (none without one).
fn unicode_path_extra_len(len: Option<usize>) -> u64 {
    len.map_or(0, |n| UNICODE_PATH_FIXED_LEN + n as u64)
}

fn central_header_len(name_len: usize, zip64_fields: usize, unicode_path: Option<usize>) -> u64 {
    let zip64 = if zip64_fields == 0 {
        0
    } else {
        4 + 8 * zip64_fields as u64
    };
    let unicode = unicode_path_extra_len(unicode_path);
    CENTRAL_HEADER_LEN + name_len as u64 + zip64 + TIMESTAMP_CENTRAL_LEN + unicode
}

fn end_len(entries: u64, cd_offset: u64, cd_len: u64) -> u64 {
    if needs_zip64_end(entries, cd_offset, cd_len) {
        ZIP64_END_LEN + ZIP64_LOCATOR_LEN + END_LEN
    } else {
        END_LEN
    }
}

fn needs_zip64_end(entries: u64, cd_offset: u64, cd_len: u64) -> bool {
    entries >= MAX_16 || cd_offset >= MAX_32 || cd_len >= MAX_32
}

/// The exact length of an archive of stored entries whose sizes are known
/// (with or without their CRCs), in order, as [`ZipWriter`] writes it.
pub fn known_archive_len(entries: impl IntoIterator<Item = EntryLayout>) -> u64 {
    let mut offset = 0u64;
    let mut cd_len = 0u64;
    let mut count = 0u64;
    for e in entries {
        let zip64_sizes = e.zip64_sizes();
        let zip64_offset = offset >= MAX_32;
        offset += e.local_header_len() + e.size + e.descriptor_len();
        cd_len += central_header_len(
            e.name_len,
            2 * usize::from(zip64_sizes) + usize::from(zip64_offset),
            e.unicode_path_len,
        );
        count += 1;
    }
    offset + cd_len + end_len(count, offset, cd_len)
}

/// What the central directory keeps of each written entry.
struct CentralRecord {
    name: Box<str>,
    legacy_name: Option<Box<LegacyName>>,
    method: Method,
    flags: u16,
    version_needed: u16,
    modified: DosDateTime,
    crc32: u32,
    compressed: u64,
    uncompressed: u64,
    offset: u64,
}

/// What a [`ZipWriter::with_capacity`] writer holds for the central
/// directory of `entries` entries whose names (and legacy header names)
/// take `name_bytes` in all: a record each (and one for an error report),
/// a copy of each name.
pub fn central_directory_bytes(entries: usize, name_bytes: usize) -> u64 {
    let record = std::mem::size_of::<CentralRecord>() + std::mem::size_of::<LegacyName>();
    ((entries + 1) * record + name_bytes) as u64
}

impl CentralRecord {
    fn zip64_fields(&self) -> (bool, bool, bool) {
        (
            self.uncompressed >= MAX_32,
            self.compressed >= MAX_32,
            self.offset >= MAX_32,
        )
    }

    fn write(&self, out: &mut BytesMut) {
        let (u64_size, c64_size, o64) = self.zip64_fields();
        let n = usize::from(u64_size) + usize::from(c64_size) + usize::from(o64);
        let version = if n > 0 { 45 } else { self.version_needed };
        let header_name = self.header_name();
        let unicode_path = self.unicode_path();
        let extras_len = (if n == 0 { 0 } else { 4 + 8 * n as u64 })
            + TIMESTAMP_CENTRAL_LEN
            + unicode_path_extra_len(unicode_path.map(str::len));
        out.put_u32_le(CENTRAL_HEADER_SIG);
        out.put_u16_le(MADE_BY);
        out.put_u16_le(version);
        out.put_u16_le(self.flags);
        out.put_u16_le(self.method.code());
        out.put_u16_le(self.modified.time);
        out.put_u16_le(self.modified.date);
        out.put_u32_le(self.crc32);
        out.put_u32_le(clamp32(self.compressed));
        out.put_u32_le(clamp32(self.uncompressed));
        out.put_u16_le(header_name.len() as u16);
        out.put_u16_le(extras_len as u16);
        out.put_u16_le(0); // comment length
        out.put_u16_le(0); // disk number start
        out.put_u16_le(0); // internal attributes
        out.put_u32_le(if self.name.ends_with('/') {
            DIRECTORY_ATTRS
        } else {
            EXTERNAL_ATTRS
        });
        out.put_u32_le(clamp32(self.offset));
        out.put_slice(header_name);
        if n > 0 {
            // APPNOTE 4.5.3: only the fields whose header value is
            // 0xFFFFFFFF, in this order.
            out.put_u16_le(ZIP64_EXTRA_ID);
            out.put_u16_le(8 * n as u16);
            if u64_size {
                out.put_u64_le(self.uncompressed);
            }
            if c64_size {
                out.put_u64_le(self.compressed);
            }
            if o64 {
                out.put_u64_le(self.offset);
            }
        }
        put_name_and_time_extras(out, self.modified, header_name, unicode_path, false);
    }

    fn header_name(&self) -> &[u8] {
        LegacyName::header_name(self.legacy_name.as_deref(), &self.name)
    }

    fn unicode_path(&self) -> Option<&str> {
        LegacyName::unicode_path(self.legacy_name.as_deref(), &self.name)
    }

    fn len(&self) -> u64 {
        let (a, b, c) = self.zip64_fields();
        central_header_len(
            self.header_name().len(),
            usize::from(a) + usize::from(b) + usize::from(c),
            self.unicode_path().map(str::len),
        )
    }
}

fn clamp32(v: u64) -> u32 {
    if v >= MAX_32 {
        u32::MAX
    } else {
        v as u32
    }
}

/// Bookkeeping of one archive: where the next record goes and what the
/// central directory will list.
#[derive(Default)]
pub struct ZipWriter {
    offset: u64,
    central: Vec<CentralRecord>,
}

impl ZipWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// A writer whose central directory has room for `entries` entries
    /// (one more for an error report), allocated once.
    pub fn with_capacity(entries: usize) -> Self {
        ZipWriter {
            offset: 0,
            central: Vec::with_capacity(entries + 1),
        }
    }

    /// Bytes of archive produced so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn entries(&self) -> usize {
        self.central.len()
    }

    /// Write the local header of the next entry. The returned writer turns
    /// the entry's bytes into archive bytes; give it back to
    /// [`ZipWriter::finish_entry`].
    pub fn begin_entry(&mut self, spec: EntrySpec) -> Result<(Bytes, EntryWriter), Error> {
        // Both the name field and a Unicode Path field (UTF-8 name plus 9
        // bytes) must fit their 16-bit lengths with the other extras.
        if spec.name.len() > usize::from(u16::MAX) - 128
            || spec.header_name().len() > usize::from(u16::MAX) - 128
        {
            return Err(Error::unprocessable("entry name too long"));
        }
        let zip64 = spec.zip64_local();
        let descriptor = spec.uses_descriptor();
        let utf8 = if spec.legacy_name.is_none() {
            FLAG_UTF8
        } else {
            0
        };
        let flags = utf8 | if descriptor { FLAG_DATA_DESCRIPTOR } else { 0 };
        let version_needed = if zip64 { 45 } else { 20 };
        let header_name = spec.header_name();
        let unicode_path = spec.unicode_path();
        let layout = EntryLayout {
            name_len: header_name.len(),
            unicode_path_len: unicode_path.map(str::len),
            size: if zip64 { MAX_32 } else { 0 },
            crc_known: true,
        };
        let mut out = BytesMut::with_capacity(layout.local_header_len() as usize);
        out.put_u32_le(LOCAL_HEADER_SIG);
        out.put_u16_le(version_needed);
        out.put_u16_le(flags);
        out.put_u16_le(spec.method.code());
        out.put_u16_le(spec.modified.time);
        out.put_u16_le(spec.modified.date);
        let (crc, size) = match spec.sizes {
            Sizes::Known { size, crc32 } if !descriptor => (crc32, size),
            // APPNOTE 4.4.4: with a data descriptor these are zero.
            _ => (0, 0),
        };
        out.put_u32_le(crc);
        if zip64 {
            out.put_u32_le(u32::MAX);
            out.put_u32_le(u32::MAX);
        } else {
            out.put_u32_le(size as u32);
            out.put_u32_le(size as u32);
        }
        out.put_u16_le(header_name.len() as u16);
        out.put_u16_le(
            (layout.local_header_len() - LOCAL_HEADER_LEN - header_name.len() as u64) as u16,
        );
        out.put_slice(header_name);
        if zip64 {
            // APPNOTE 4.5.3: the local extra holds both sizes (zero when a
            // data descriptor follows; the descriptor then has 8-byte sizes).
            out.put_u16_le(ZIP64_EXTRA_ID);
            out.put_u16_le(16);
            out.put_u64_le(size);
            out.put_u64_le(size);
        }
        put_name_and_time_extras(&mut out, spec.modified, header_name, unicode_path, true);
        debug_assert_eq!(out.len() as u64, layout.local_header_len());
        let header = out.freeze();
        let entry = EntryWriter {
            offset: self.offset,
            version_needed,
            flags,
            zip64,
            descriptor,
            crc: crc32fast::Hasher::new(),
            uncompressed: 0,
            compressed: 0,
            deflate: match spec.method {
                Method::Store => None,
                Method::Deflate => Some(Box::new(Compress::new(Compression::default(), false))),
            },
            assumed_crc: None,
            spec,
        };
        self.offset += header.len() as u64;
        Ok((header, entry))
    }

    /// Close an entry: flush the compressor, check the sizes it promised,
    /// and return the last bytes (deflate tail, data descriptor).
    pub fn finish_entry(&mut self, mut entry: EntryWriter) -> Result<Bytes, Error> {
        let mut out = BytesMut::new();
        if let Some(deflate) = entry.deflate.as_mut() {
            let tail = deflate_all(deflate, &[], FlushCompress::Finish)?;
            entry.compressed += tail.len() as u64;
            out.extend_from_slice(&tail);
        }
        entry.check_fits()?;
        let crc32 = entry
            .assumed_crc
            .unwrap_or_else(|| entry.crc.clone().finalize());
        match entry.spec.sizes {
            Sizes::Length(n) if n != entry.uncompressed => {
                return Err(size_mismatch(&entry.spec.name, n, entry.uncompressed))
            }
            Sizes::Known { size, .. } if size != entry.uncompressed => {
                return Err(size_mismatch(&entry.spec.name, size, entry.uncompressed))
            }
            Sizes::Known { crc32: want, .. } if want != crc32 => {
                return Err(Error::new(
                    ErrorKind::BodyBroken,
                    format!(
                        "{}: CRC-32 is {crc32:08x}, the manifest declared {want:08x}",
                        entry.spec.name
                    ),
                ))
            }
            _ => {}
        }
        if entry.descriptor {
            out.put_u32_le(DATA_DESCRIPTOR_SIG);
            out.put_u32_le(crc32);
            if entry.zip64 {
                out.put_u64_le(entry.compressed);
                out.put_u64_le(entry.uncompressed);
            } else {
                out.put_u32_le(entry.compressed as u32);
                out.put_u32_le(entry.uncompressed as u32);
            }
        }
        let out = out.freeze();
        let descriptor_len = if entry.descriptor {
            if entry.zip64 {
                24
            } else {
                16
            }
        } else {
            0
        };
        self.offset += entry.compressed + descriptor_len;
        self.central.push(CentralRecord {
            name: entry.spec.name.into_boxed_str(),
            legacy_name: entry.spec.legacy_name.map(Box::new),
            method: entry.spec.method,
            flags: entry.flags,
            version_needed: entry.version_needed,
            modified: entry.spec.modified,
            crc32,
            compressed: entry.compressed,
            uncompressed: entry.uncompressed,
            offset: entry.offset,
        });
        Ok(out)
    }

    /// The central directory and end records, cut into chunks of at most 64 KiB.
    pub fn finish(self) -> Vec<Bytes> {
        let cd_offset = self.offset;
        let cd_len: u64 = self.central.iter().map(CentralRecord::len).sum();
        let count = self.central.len() as u64;
        let mut chunks = Vec::new();
        let mut out = BytesMut::with_capacity(OUT_CHUNK);
        for record in &self.central {
            record.write(&mut out);
            if out.len() >= OUT_CHUNK - 1024 {
                chunks.push(out.split().freeze());
            }
        }
        let zip64 = needs_zip64_end(count, cd_offset, cd_len);
        if zip64 {
            let end64_offset = cd_offset + cd_len;
            out.put_u32_le(ZIP64_END_SIG);
            out.put_u64_le(ZIP64_END_LEN - 12); // size of the rest of this record
            out.put_u16_le(MADE_BY);
            out.put_u16_le(45);
            out.put_u32_le(0); // this disk
            out.put_u32_le(0); // disk with the central directory
            out.put_u64_le(count);
            out.put_u64_le(count);
            out.put_u64_le(cd_len);
            out.put_u64_le(cd_offset);
            out.put_u32_le(ZIP64_LOCATOR_SIG);
            out.put_u32_le(0);
            out.put_u64_le(end64_offset);
            out.put_u32_le(1); // total disks
        }
        // As Go's archive/zip does: with ZIP64 end records, every field of
        // the classic record points there.
        let (count16, len32, off32) = if zip64 {
            (u16::MAX, u32::MAX, u32::MAX)
        } else {
            (count as u16, cd_len as u32, cd_offset as u32)
        };
        out.put_u32_le(END_SIG);
        out.put_u16_le(0);
        out.put_u16_le(0);
        out.put_u16_le(count16);
        out.put_u16_le(count16);
        out.put_u32_le(len32);
        out.put_u32_le(off32);
        out.put_u16_le(0); // comment length
        chunks.push(out.freeze());
        chunks
    }

    /// Length of what [`ZipWriter::finish`] will return.
    pub fn finish_len(&self) -> u64 {
        let cd_len: u64 = self.central.iter().map(CentralRecord::len).sum();
        cd_len + end_len(self.central.len() as u64, self.offset, cd_len)
    }
}

fn size_mismatch(name: &str, declared: u64, got: u64) -> Error {
    Error::new(
        ErrorKind::BodyBroken,
        format!("{name}: origin sent {got} bytes, {declared} were declared"),
    )
}

/// Turns one entry's bytes into archive bytes while counting sizes and CRC.
pub struct EntryWriter {
    spec: EntrySpec,
    offset: u64,
    version_needed: u16,
    flags: u16,
    zip64: bool,
    descriptor: bool,
    crc: crc32fast::Hasher,
    uncompressed: u64,
    compressed: u64,
    deflate: Option<Box<Compress>>,
    assumed_crc: Option<u32>,
}

impl EntryWriter {
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn method(&self) -> Method {
        self.spec.method
    }

    /// Account for the entry's declared bytes without taking them: a ranged
    /// archive skips (or sends raw) entries outside or across the range.
    /// Only valid for stored entries of known size and CRC.
    pub fn assume_declared(&mut self) -> Result<(), Error> {
        match (self.spec.sizes, self.spec.method) {
            (Sizes::Known { size, crc32 }, Method::Store) if self.uncompressed == 0 => {
                self.uncompressed = size;
                self.compressed = size;
                self.assumed_crc = Some(crc32);
                Ok(())
            }
            _ => Err(Error::internal("only a known stored entry can be assumed")),
        }
    }

    /// Uncompressed bytes taken so far.
    pub fn written(&self) -> u64 {
        self.uncompressed
    }

    /// Take the next chunk of entry data; returns the archive bytes for it
    /// (the chunk itself when stored; possibly empty when deflated).
    pub fn write(&mut self, chunk: Bytes) -> Result<Bytes, Error> {
        self.crc.update(&chunk);
        self.uncompressed += chunk.len() as u64;
        if let Some(n) = self.spec.sizes.length() {
            if self.uncompressed > n {
                return Err(size_mismatch(&self.spec.name, n, self.uncompressed));
            }
        }
        let out = match self.deflate.as_mut() {
            None => chunk,
            Some(deflate) => Bytes::from(deflate_all(deflate, &chunk, FlushCompress::None)?),
        };
        self.compressed += out.len() as u64;
        self.check_fits()?;
        Ok(out)
    }

    fn check_fits(&self) -> Result<(), Error> {
        if !self.zip64 && (self.uncompressed >= MAX_32 || self.compressed >= MAX_32) {
            return Err(Error::new(
                ErrorKind::BodyBroken,
                format!(
                    "{}: entry of undeclared length passed 4 GiB; declare its size",
                    self.spec.name
                ),
            ));
        }
        Ok(())
    }
}

fn deflate_all(c: &mut Compress, mut input: &[u8], flush: FlushCompress) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(input.len() / 2 + 1024);
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity().max(16 * 1024));
        }
        let before_in = c.total_in();
        let status = c
            .compress_vec(input, &mut out, flush)
            .map_err(|e| Error::internal("deflate failed").with_cause(e))?;
        let used = (c.total_in() - before_in) as usize;
        input = &input[used..];
        match (flush, status) {
            (FlushCompress::Finish, Status::StreamEnd) => return Ok(out),
            (FlushCompress::Finish, _) => continue,
            _ if input.is_empty() && out.len() < out.capacity() => return Ok(out),
            _ => continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, method: Method, sizes: Sizes) -> EntrySpec {
        EntrySpec {
            name: name.into(),
            legacy_name: None,
            method,
            modified: DosDateTime::from_unix(1_700_000_000),
            sizes,
        }
    }

    /// Write entries and return the whole archive.
    fn archive(entries: &[(EntrySpec, &[u8])]) -> Result<Vec<u8>, Error> {
        let mut w = ZipWriter::new();
        let mut out = Vec::new();
        for (s, data) in entries {
            let (h, mut e) = w.begin_entry(s.clone())?;
            out.extend_from_slice(&h);
            for piece in data.chunks(1000) {
                out.extend_from_slice(&e.write(Bytes::copy_from_slice(piece))?);
            }
            out.extend_from_slice(&w.finish_entry(e)?);
            assert_eq!(w.offset(), out.len() as u64);
        }
        let predicted = w.finish_len();
        let before = out.len();
        for c in w.finish() {
            assert!(c.len() <= OUT_CHUNK);
            out.extend_from_slice(&c);
        }
        assert_eq!((out.len() - before) as u64, predicted);
        Ok(out)
    }

    #[test]
    fn dos_times_convert_and_clamp() {
        // 2023-11-14 22:13:20 UTC
        let t = DosDateTime::from_unix(1_700_000_000);
        assert_eq!(t.date >> 9, 2023 - 1980);
        assert_eq!((t.date >> 5) & 0xF, 11);
        assert_eq!(t.date & 0x1F, 14);
        assert_eq!(t.time >> 11, 22);
        assert_eq!((t.time >> 5) & 0x3F, 13);
        assert_eq!((t.time & 0x1F) * 2, 20);
        assert_eq!(DosDateTime::from_unix(0), DosDateTime::EPOCH);
        assert_eq!(DosDateTime::from_unix(-5), DosDateTime::EPOCH);
        assert_eq!(
            DosDateTime::from_unix(i64::from(u32::MAX) * 4).date >> 9,
            127
        );
        // 2000-02-29 (leap day)
        let leap = DosDateTime::from_unix(951_782_400);
        assert_eq!((leap.date >> 5) & 0xF, 2);
        assert_eq!(leap.date & 0x1F, 29);
    }

    #[test]
    fn known_size_prediction_matches_the_bytes_written() {
        let a = vec![7u8; 3000];
        let b = b"";
        let entries = [
            (
                spec(
                    "a.jpg",
                    Method::Store,
                    Sizes::Known {
                        size: 3000,
                        crc32: crc32fast::hash(&a),
                    },
                ),
                &a[..],
            ),
            (
                spec(
                    "dir/ü.png",
                    Method::Store,
                    Sizes::Known { size: 0, crc32: 0 },
                ),
                &b[..],
            ),
        ];
        let out = archive(&entries).unwrap();
        let predicted = known_archive_len([
            EntryLayout::known(5, 3000),
            EntryLayout::known("dir/ü.png".len(), 0),
        ]);
        assert_eq!(out.len() as u64, predicted);
        // Known entries carry their CRC in the local header and no descriptor.
        assert_eq!(&out[14..18], &crc32fast::hash(&a).to_le_bytes());
        assert_eq!(
            u16::from_le_bytes([out[6], out[7]]) & FLAG_DATA_DESCRIPTOR,
            0
        );
    }

    #[test]
    fn an_empty_archive_is_just_the_end_record() {
        let out = archive(&[]).unwrap();
        assert_eq!(out.len(), 22);
        assert_eq!(known_archive_len([]), 22);
        assert_eq!(&out[..4], &END_SIG.to_le_bytes());
    }

    #[test]
    fn declared_sizes_and_crcs_are_enforced() {
        let data = vec![1u8; 100];
        let too_long = archive(&[(spec("a.bin", Method::Deflate, Sizes::Length(50)), &data)]);
        assert_eq!(too_long.unwrap_err().kind, ErrorKind::BodyBroken);
        let too_short = archive(&[(spec("a.bin", Method::Store, Sizes::Length(150)), &data)]);
        assert!(too_short.unwrap_err().reason.contains("150 were declared"));
        let bad_crc = archive(&[(
            spec(
                "a.bin",
                Method::Store,
                Sizes::Known {
                    size: 100,
                    crc32: 1,
                },
            ),
            &data,
        )]);
        assert!(bad_crc.unwrap_err().reason.contains("CRC-32"));
    }

    #[test]
    fn zip64_only_when_an_entry_may_reach_4_gib() {
        assert!(!spec("a", Method::Store, Sizes::Unknown).zip64_local());
        assert!(!spec("a", Method::Store, Sizes::Length(MAX_32 - 1)).zip64_local());
        assert!(spec("a", Method::Store, Sizes::Length(MAX_32)).zip64_local());
        assert!(spec("a", Method::Deflate, Sizes::Length(MAX_32 - 1000)).zip64_local());
        assert!(!spec("a", Method::Deflate, Sizes::Length(1 << 31)).zip64_local());
        // Entry count: 65535 entries need the ZIP64 end record, 65534 do not.
        assert_eq!(end_len(65_534, 0, 0), END_LEN);
        assert_eq!(end_len(65_535, 0, 0), END_LEN + 76);
        // Each local header has a 13-byte timestamp field, each central
        // header a 9-byte one.
        assert_eq!(
            known_archive_len([EntryLayout::known(1, MAX_32), EntryLayout::known(1, 1)]),
            (31 + 20 + 13 + MAX_32) + (31 + 13 + 1) + (47 + 20 + 9) + (47 + 12 + 9) + 98
        );
    }

    #[test]
    fn deflated_data_round_trips() {
        let text = "hello zip ".repeat(5000);
        let mut w = ZipWriter::new();
        let (_, mut e) = w
            .begin_entry(spec("t.txt", Method::Deflate, Sizes::Unknown))
            .unwrap();
        let mut deflated = Vec::new();
        for piece in text.as_bytes().chunks(777) {
            deflated.extend_from_slice(&e.write(Bytes::copy_from_slice(piece)).unwrap());
        }
        let tail = w.finish_entry(e).unwrap();
        deflated.extend_from_slice(&tail[..tail.len() - 16]);
        assert!(deflated.len() < text.len() / 10);
        let mut inflated = Vec::with_capacity(text.len() + 1024);
        let mut d = flate2::Decompress::new(false);
        d.decompress_vec(&deflated, &mut inflated, flate2::FlushDecompress::Finish)
            .unwrap();
        assert_eq!(inflated, text.as_bytes());
    }

    /// mod_zip's t/ziptest.pl: two stored files of 24 and 25 bytes with
    /// CRCs make a 303-byte archive, the second file's data at byte 128.
    #[test]
    fn stored_entries_are_laid_out_as_mod_zip_lays_them_out() {
        let (one, two) = (b"This is the first file.\n", b"This is the second file.\n");
        let known = |name: &str, data: &[u8]| {
            spec(
                name,
                Method::Store,
                Sizes::Known {
                    size: data.len() as u64,
                    crc32: crc32fast::hash(data),
                },
            )
        };
        let out = archive(&[
            (known("file1.txt", one), &one[..]),
            (known("file2.txt", two), &two[..]),
        ])
        .unwrap();
        assert_eq!(out.len(), 303);
        assert_eq!(&out[52..76], one);
        assert_eq!(&out[128..153], two);
        assert_eq!(&out[30..39], b"file1.txt");
    }

    #[test]
    fn known_sizes_without_crcs_have_a_predictable_length() {
        let data = vec![9u8; 5000];
        let entries = [
            (spec("a.bin", Method::Store, Sizes::Length(5000)), &data[..]),
            (spec("b.bin", Method::Store, Sizes::Length(0)), &data[..0]),
        ];
        let out = archive(&entries).unwrap();
        let layout = |name_len, size| EntryLayout {
            name_len,
            unicode_path_len: None,
            size,
            crc_known: false,
        };
        assert_eq!(
            out.len() as u64,
            known_archive_len([layout(5, 5000), layout(5, 0)])
        );
        let flags = u16::from_le_bytes([out[6], out[7]]);
        assert_eq!(flags & FLAG_DATA_DESCRIPTOR, FLAG_DATA_DESCRIPTOR);
    }

    #[test]
    fn a_legacy_name_has_no_utf8_flag_and_a_unicode_path() {
        let mut s = spec(
            "фото.jpg",
            Method::Store,
            Sizes::Known { size: 0, crc32: 0 },
        );
        let cp866 = vec![0xE4, 0xAE, 0xE2, 0xAE, b'.', b'j', b'p', b'g'];
        s.legacy_name = Some(LegacyName {
            bytes: cp866.clone().into(),
            unicode_path: true,
        });
        let out = archive(&[(s, &[][..])]).unwrap();
        let flags = u16::from_le_bytes([out[6], out[7]]);
        assert_eq!(flags & FLAG_UTF8, 0);
        assert_eq!(&out[30..38], &cp866[..]);
        let up = out
            .windows(2)
            .position(|w| w == UNICODE_PATH_EXTRA_ID.to_le_bytes())
            .unwrap();
        assert_eq!(out[up + 4], 1);
        assert_eq!(&out[up + 5..up + 9], &crc32fast::hash(&cp866).to_le_bytes());
        assert_eq!(
            &out[up + 9..up + 9 + "фото.jpg".len()],
            "фото.jpg".as_bytes()
        );
        let layout = EntryLayout {
            name_len: cp866.len(),
            unicode_path_len: Some("фото.jpg".len()),
            size: 0,
            crc_known: true,
        };
        assert_eq!(out.len() as u64, known_archive_len([layout]));
    }
}
