//! Manifests: what an archive should contain, parsed from either form into
//! one [`ArchivePlan`].
//!
//! - The JSON body of `POST /zip`:
//!   `{"name": "photos.zip", "on_error": "skip", "entries": [{"source": "2024/a.jpg", "name": "trip/a.jpg", "size": 123, "crc32": "8a2f10c3", "mtime": 1700000000}]}`
//! - nginx mod_zip's text manifest (`X-Archive-Files: zip`), one entry per
//!   line: `<crc32 hex or -> <size> <url-encoded location> <name>`.
//!
//! A JSON entry may also ask for processed images (docs/zip.md, "Processed entries"):
//! `"options": "rs:fit:200:200"` makes one processed entry, and
//! `"variants": [{"name": "a_200.jpg", "options": "rs:fit:200:200"}, …]`
//! makes one entry per variant, in order, all from one fetch and one decode
//! (consecutive [`EntrySource::Processed`] entries with the same `group`).
//!
//! Sources are paths on the configured origin, never URLs. Names are
//! sanitised and de-duplicated here, so everything downstream can trust them.

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde::Deserialize;

use super::media::{self, MethodChoice};
use super::names::{self, Namer};
use super::writer::{DosDateTime, LegacyName, Method, Sizes};
use crate::error::{Error, ErrorKind, Result};
use crate::image::http::options::{Options, OutputFormat, Presets};
use crate::image::run::variants::VariantSpec;

/// What to do when an entry cannot be fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Leave the entry out and list it in `sluice-errors.txt`.
    #[default]
    Skip,
    /// Abort the whole download.
    Abort,
}

/// Where entry sizes come from: the manifest only, or also `HEAD`
/// requests before the first byte ([`super::probe`]), so that the archive
/// can have a `Content-Length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SizesFrom {
    #[default]
    Declared,
    Probe,
}

/// Where an entry's bytes come from: the origin's bytes as they are, or an
/// image the recompression pipeline made from them. The archive only needs
/// a stream of bytes from either.
#[derive(Debug, Clone, PartialEq)]
pub enum EntrySource {
    /// The original bytes of `path_and_query` (percent-encoded, starting
    /// with `/`) on the configured origin.
    Origin { path_and_query: String },
    /// One processed output of `path_and_query`. Entries of one `group`
    /// (the manifest entry's index) are consecutive and are made from one
    /// fetch and one decode. Their size is unknown until encoded, so they
    /// always stream (never known-size/Range mode).
    Processed {
        path_and_query: String,
        group: usize,
        /// Boxed: options are large, and most entries are not processed.
        variant: Box<VariantSpec>,
    },
    /// A directory entry (mod_zip's `@directory`): no bytes, nothing fetched.
    Directory,
}

impl EntrySource {
    pub fn describe(&self) -> &str {
        match self {
            EntrySource::Directory => "@directory",
            EntrySource::Origin { path_and_query }
            | EntrySource::Processed { path_and_query, .. } => path_and_query,
        }
    }
}

/// One entry of an archive, ready to fetch and write.
#[derive(Debug, Clone)]
pub struct PlannedEntry {
    pub source: EntrySource,
    /// Sanitised and unique within the archive.
    pub name: String,
    pub method: MethodChoice,
    /// Size and CRC as declared by the manifest (checked against the bytes).
    pub declared: Sizes,
    /// Modification time from the manifest, if it gave one.
    pub modified: Option<DosDateTime>,
    /// The name in a legacy charset (mod_zip's `X-Archive-Charset`,
    /// `X-Archive-Name-Sep`); `None` writes `name` as UTF-8.
    /// Boxed: most archives have none, and plans can be 200k entries.
    pub legacy_name: Option<Box<LegacyName>>,
}

impl PlannedEntry {
    /// Bytes this entry holds on the heap (beyond its own size).
    pub fn heap_bytes(&self) -> u64 {
        let (source, variant) = match &self.source {
            EntrySource::Directory => (0, 0),
            EntrySource::Origin { path_and_query } => (path_and_query.capacity(), 0),
            EntrySource::Processed { path_and_query, .. } => (
                path_and_query.capacity(),
                std::mem::size_of::<VariantSpec>(),
            ),
        };
        let legacy = self
            .legacy_name
            .as_ref()
            .map_or(0, |l| std::mem::size_of::<LegacyName>() + l.bytes.len());
        (self.name.capacity() + source + variant + legacy) as u64
    }
}

/// A whole archive request.
#[derive(Debug, Clone)]
pub struct ArchivePlan {
    /// The download's file name (for Content-Disposition), ending in `.zip`.
    pub file_name: Option<String>,
    pub entries: Vec<PlannedEntry>,
    pub on_error: OnError,
    /// Time for entries without their own, in known-size mode (mod_zip:
    /// the manifest response's Last-Modified).
    pub modified: Option<DosDateTime>,
    /// Client request headers sent along with every entry's origin request
    /// (mod_zip's `X-Archive-Pass-Headers`); empty for JSON manifests.
    pub pass_headers: http::HeaderMap,
    /// JSON `"sizes"`: whether to learn missing sizes before the first byte.
    pub sizes: SizesFrom,
}

impl ArchivePlan {
    /// Every entry stored with its size declared: the archive's exact
    /// length is known before any fetch (Content-Length), as mod_zip
    /// sends it. Entries without a CRC then take a data descriptor.
    pub fn is_known_size(&self) -> bool {
        self.entries.iter().all(|e| {
            e.method == MethodChoice::Fixed(Method::Store)
                && !matches!(e.source, EntrySource::Processed { .. })
                && e.declared.length().is_some()
        })
    }

    /// Known size, and every CRC declared too: every byte of the archive
    /// follows from the manifest, so any byte range of it can be made
    /// without the entries before it (Range, If-Range).
    pub fn is_rangeable(&self) -> bool {
        self.is_known_size()
            && self
                .entries
                .iter()
                .all(|e| matches!(e.declared, Sizes::Known { .. }))
    }

    /// Sum of declared sizes (a lower bound of the archive's length).
    pub fn declared_bytes(&self) -> u64 {
        self.entries
            .iter()
            .filter_map(|e| e.declared.length())
            .fold(0u64, u64::saturating_add)
    }
}

/// Limits applied while parsing.
#[derive(Debug, Clone, Copy)]
pub struct ManifestLimits {
    pub max_entries: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonEntry {
    source: String,
    name: Option<String>,
    size: Option<u64>,
    crc32: Option<JsonCrc>,
    /// Seconds since the Unix epoch.
    mtime: Option<i64>,
    /// imgproxy option segments (`/`-separated): one processed entry.
    options: Option<String>,
    /// Several processed entries from one fetch and one decode.
    variants: Option<Vec<JsonVariant>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonVariant {
    name: Option<String>,
    options: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum JsonCrc {
    Number(u32),
    Hex(String),
}

fn unprocessable(reason: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::new(ErrorKind::Unprocessable, reason)
}

/// What a plan holds while it is built, reported as it grows so the caller
/// can count it in the memory budget (`Err` stops the parse).
pub type PlanMeter<'a> = &'a mut dyn FnMut(u64) -> Result<()>;

/// Entries planned between two reports to the [`PlanMeter`].
const METER_EVERY: usize = 256;

/// The entries planned so far, the names they took, and what they hold.
struct PlanBuilder<'m> {
    limits: ManifestLimits,
    namer: Namer,
    entries: Vec<PlannedEntry>,
    /// Heap bytes of the entries (names, sources, variants).
    entry_heap: u64,
    /// What the parse holds besides the plan while it runs (a native
    /// manifest's text form).
    scratch: u64,
    meter: PlanMeter<'m>,
}

impl<'m> PlanBuilder<'m> {
    fn new(limits: ManifestLimits, meter: PlanMeter<'m>) -> Self {
        PlanBuilder {
            limits,
            namer: Namer::new(),
            entries: Vec::new(),
            entry_heap: 0,
            scratch: 0,
            meter,
        }
    }

    fn push(&mut self, mut entry: PlannedEntry) -> Result<()> {
        if self.entries.len() >= self.limits.max_entries {
            return Err(too_many(self.limits));
        }
        // An empty entry's CRC is known (0): it needs no data descriptor,
        // and keeps an archive rangeable.
        if entry.declared == Sizes::Length(0) {
            entry.declared = Sizes::Known { size: 0, crc32: 0 };
        }
        self.entry_heap += entry.heap_bytes();
        self.entries.push(entry);
        if self.entries.len() % METER_EVERY == 0 {
            self.report()?;
        }
        Ok(())
    }

    fn held(&self) -> u64 {
        (self.entries.capacity() * std::mem::size_of::<PlannedEntry>()) as u64
            + self.entry_heap
            + self.namer.heap_bytes()
            + self.scratch
    }

    fn report(&mut self) -> Result<()> {
        let held = self.held();
        (self.meter)(held)
    }

    /// The finished entries; the namer's memory goes with this builder.
    fn finish(mut self) -> Result<Vec<PlannedEntry>> {
        self.report()?;
        self.entries.shrink_to_fit();
        let entries = std::mem::take(&mut self.entries);
        drop(self.namer);
        let heap = self.entry_heap;
        (self.meter)((entries.capacity() * std::mem::size_of::<PlannedEntry>()) as u64 + heap)?;
        Ok(entries)
    }
}

/// Parse the JSON manifest of `POST /zip`. `presets` are the server's
/// `--preset`s, usable in entries' `options`.
///
/// The entries are planned one by one as the parser reads them (a serde
/// seed), so the parsed form of the whole manifest never exists beside the
/// plan, and `meter` hears what the plan holds as it grows.
pub fn parse_json(
    body: &[u8],
    limits: ManifestLimits,
    presets: &Presets,
    meter: PlanMeter<'_>,
) -> Result<ArchivePlan> {
    use serde::de::DeserializeSeed;
    let mut builder = PlanBuilder::new(limits, meter);
    // A planning error (limits, a bad entry, the meter) is kept here and
    // reported as it is, rather than as serde's text.
    let mut failed: Option<Error> = None;
    let mut de = serde_json::Deserializer::from_slice(body);
    let head = ManifestSeed {
        builder: &mut builder,
        presets,
        failed: &mut failed,
    }
    .deserialize(&mut de)
    .and_then(|head| de.end().map(|()| head));
    let head = match (head, failed) {
        (_, Some(e)) => return Err(e),
        (Err(e), None) => {
            let kind = if e.is_data() {
                ErrorKind::Unprocessable
            } else {
                ErrorKind::InvalidRequest
            };
            return Err(Error::new(kind, format!("manifest: {e}")));
        }
        (Ok(head), None) => head,
    };
    Ok(ArchivePlan {
        file_name: head.name.as_deref().map(download_name),
        entries: builder.finish()?,
        on_error: head.on_error,
        modified: None,
        pass_headers: http::HeaderMap::new(),
        sizes: head.sizes,
    })
}

/// The manifest's fields other than `entries`.
struct ManifestHead {
    name: Option<String>,
    on_error: OnError,
    sizes: SizesFrom,
}

/// Reads the manifest object, planning `entries` as they come.
struct ManifestSeed<'a, 'm> {
    builder: &'a mut PlanBuilder<'m>,
    presets: &'a Presets,
    failed: &'a mut Option<Error>,
}

impl<'de> serde::de::DeserializeSeed<'de> for ManifestSeed<'_, '_> {
    type Value = ManifestHead;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<ManifestHead, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for ManifestSeed<'_, '_> {
    type Value = ManifestHead;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a manifest object with `entries`")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<ManifestHead, A::Error> {
        use serde::de::Error as _;
        let mut name: Option<Option<String>> = None;
        let mut on_error: Option<OnError> = None;
        let mut sizes: Option<SizesFrom> = None;
        let mut entries = false;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "name" if name.is_none() => name = Some(map.next_value()?),
                "on_error" if on_error.is_none() => on_error = Some(map.next_value()?),
                "sizes" if sizes.is_none() => sizes = Some(map.next_value()?),
                "entries" if !entries => {
                    entries = true;
                    map.next_value_seed(EntriesSeed {
                        builder: &mut *self.builder,
                        presets: self.presets,
                        failed: &mut *self.failed,
                    })?;
                }
                "name" | "on_error" | "entries" | "sizes" => {
                    return Err(A::Error::custom(format!("duplicate field `{key}`")))
                }
                other => {
                    return Err(A::Error::unknown_field(
                        other,
                        &["name", "entries", "on_error", "sizes"],
                    ))
                }
            }
        }
        if !entries {
            return Err(A::Error::missing_field("entries"));
        }
        Ok(ManifestHead {
            name: name.flatten(),
            on_error: on_error.unwrap_or_default(),
            sizes: sizes.unwrap_or_default(),
        })
    }
}

/// Plans each element of `entries` as soon as it is parsed.
struct EntriesSeed<'a, 'm> {
    builder: &'a mut PlanBuilder<'m>,
    presets: &'a Presets,
    failed: &'a mut Option<Error>,
}

impl<'de> serde::de::DeserializeSeed<'de> for EntriesSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for EntriesSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of entries")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        use serde::de::Error as _;
        let mut i = 0;
        while let Some(entry) = seq.next_element::<JsonEntry>()? {
            if let Err(e) = plan_json_entry(i, entry, self.presets, self.builder) {
                let reason = e.reason.to_string();
                *self.failed = Some(e);
                return Err(A::Error::custom(reason));
            }
            i += 1;
        }
        Ok(())
    }
}

/// Plan manifest entry `i` (one entry, or one per variant).
fn plan_json_entry(i: usize, e: JsonEntry, presets: &Presets, b: &mut PlanBuilder) -> Result<()> {
    let path_and_query = encode_source(&e.source)
        .map_err(|why| unprocessable(format!("entry {i}: source {:?} {why}", e.source)))?;
    if e.options.is_some() || e.variants.is_some() {
        return processed_entries(i, e, path_and_query, presets, b);
    }
    let requested = e
        .name
        .as_deref()
        .unwrap_or_else(|| names::file_name_of(&e.source));
    let name = names::sanitize(requested)
        .ok_or_else(|| unprocessable(format!("entry {i}: name {requested:?} is empty")))?;
    let crc32 =
        match e.crc32 {
            None => None,
            Some(JsonCrc::Number(n)) => Some(n),
            Some(JsonCrc::Hex(s)) => Some(parse_crc(&s).ok_or_else(|| {
                unprocessable(format!("entry {i}: crc32 {s:?} is not 8 hex digits"))
            })?),
        };
    let declared = match (e.size, crc32) {
        (Some(size), Some(crc32)) => Sizes::Known { size, crc32 },
        (Some(size), None) => Sizes::Length(size),
        (None, None) => Sizes::Unknown,
        (None, Some(_)) => return Err(unprocessable(format!("entry {i}: crc32 needs a size too"))),
    };
    let method = media::choose_by_name(&name)
        .or_else(|| media::choose_by_name(names::file_name_of(&e.source)));
    let name = b.namer.unique(&name);
    b.push(PlannedEntry {
        source: EntrySource::Origin { path_and_query },
        name,
        method: method.map_or(MethodChoice::ByContentType, MethodChoice::Fixed),
        declared,
        modified: e.mtime.map(DosDateTime::from_unix),
        legacy_name: None,
    })
}

/// The entries of a manifest entry with `options` or `variants`.
fn processed_entries(
    i: usize,
    e: JsonEntry,
    path_and_query: String,
    presets: &Presets,
    b: &mut PlanBuilder,
) -> Result<()> {
    if e.size.is_some() || e.crc32.is_some() {
        return Err(unprocessable(format!(
            "entry {i}: size/crc32 cannot be declared for a processed image (its size is known only once encoded)"
        )));
    }
    let modified = e.mtime.map(DosDateTime::from_unix);
    let wanted: Vec<(Option<String>, String, String)> = match (e.options, e.variants) {
        (Some(_), Some(_)) => {
            return Err(unprocessable(format!(
                "entry {i}: give either `options` or `variants`, not both"
            )))
        }
        (Some(options), None) => vec![(e.name, options, format!("entry {i}"))],
        (None, Some(variants)) => {
            if e.name.is_some() {
                return Err(unprocessable(format!(
                    "entry {i}: with `variants`, each variant has its own `name`"
                )));
            }
            if variants.is_empty() {
                return Err(unprocessable(format!("entry {i}: `variants` is empty")));
            }
            variants
                .into_iter()
                .enumerate()
                .map(|(j, v)| {
                    let name = v.name.ok_or_else(|| {
                        unprocessable(format!("entry {i} variant {j}: `name` is missing"))
                    })?;
                    Ok((Some(name), v.options, format!("entry {i} variant {j}")))
                })
                .collect::<Result<_>>()?
        }
        (None, None) => unreachable!("checked by the caller"),
    };
    for (name, options_text, at) in wanted {
        let options = Options::parse(options_text.split('/').filter(|s| !s.is_empty()), presets)
            .map_err(|err| {
                unprocessable(format!("{at}: options {options_text:?}: {}", err.reason))
            })?;
        let (requested, format) = match name {
            Some(name) => {
                let format = options.format.or_else(|| format_of_name(&name));
                (name, format)
            }
            None => default_processed_name(&e.source, options.format)
                .ok_or_else(|| {
                    unprocessable(format!(
                        "{at}: cannot tell the output format of {:?}; give `f:` in `options` or a `name` ending in .jpg, .png or .webp",
                        e.source
                    ))
                })?,
        };
        let name = names::sanitize(&requested)
            .ok_or_else(|| unprocessable(format!("{at}: name {requested:?} is empty")))?;
        let name = b.namer.unique(&name);
        b.push(PlannedEntry {
            source: EntrySource::Processed {
                path_and_query: path_and_query.clone(),
                group: i,
                variant: Box::new(VariantSpec { options, format }),
            },
            name,
            // Encoded images do not deflate.
            method: MethodChoice::Fixed(Method::Store),
            declared: Sizes::Unknown,
            legacy_name: None,
            modified,
        })?;
    }
    Ok(())
}

/// The output format a name's extension asks for, if it is one sluice
/// encodes.
fn format_of_name(name: &str) -> Option<OutputFormat> {
    let (_, ext) = names::file_name_of(name).rsplit_once('.')?;
    OutputFormat::from_extension(ext)
}

/// The name (and format) of an `options` entry without a `name`: the
/// source's file name with the output format's extension. Without `f:`,
/// the format follows the source's extension (.jpg/.jpeg, .png, .webp
/// keep theirs; .gif becomes .png, as a GIF's natural output is PNG);
/// other extensions cannot be told before the fetch (`None`).
fn default_processed_name(
    source: &str,
    format: Option<OutputFormat>,
) -> Option<(String, Option<OutputFormat>)> {
    let file = names::file_name_of(source);
    let (stem, ext) = file.rsplit_once('.').unwrap_or((file, ""));
    let stem = if stem.is_empty() { "image" } else { stem };
    let format = match format {
        Some(f) => f,
        None if ext.eq_ignore_ascii_case("gif") => OutputFormat::Png,
        None => return format_of_name(file).map(|f| (file.to_string(), Some(f))),
    };
    Some((format!("{stem}.{}", format.extension()), Some(format)))
}

/// Parse an nginx mod_zip manifest. As in mod_zip, every entry is stored.
///
/// The grammar is mod_zip's (its Ragel parser, `ngx_http_zip_parsers.rl`):
/// entries are separated by any run of `\r` and `\n`; in an entry, fields by
/// any run of spaces: a CRC-32 of 1 to 8 hex digits in either case, or `-`;
/// the size in decimal; the location (percent-encoded, with an optional
/// `?query`), and the name, which is the rest of the line and may hold
/// spaces. A location of exactly `@directory` makes a directory entry
/// (size and CRC are then ignored); other locations, whether or not they
/// start with `/` or `@`, are paths on the origin.
pub fn parse_mod_zip(
    body: &[u8],
    limits: ManifestLimits,
    charset: &NameCharset,
    meter: PlanMeter<'_>,
) -> Result<ArchivePlan> {
    let text = match charset {
        NameCharset::Utf8 | NameCharset::Legacy(_) => std::borrow::Cow::Borrowed(
            std::str::from_utf8(body)
                .map_err(|_| unprocessable("mod_zip manifest is not UTF-8"))?,
        ),
        NameCharset::Native | NameCharset::Separated(_) => {
            // Counted before it is made: up to 3 bytes per manifest byte.
            meter(raw::text_len(body))?;
            std::borrow::Cow::Owned(raw::to_text(body))
        }
    };
    let mut b = PlanBuilder::new(limits, meter);
    if let std::borrow::Cow::Owned(t) = &text {
        b.scratch = t.capacity() as u64;
    }
    for (i, line) in text.split(['\r', '\n']).enumerate() {
        if line.is_empty() {
            continue;
        }
        let bad = |why: &str| unprocessable(format!("mod_zip manifest entry {}: {why}", i + 1));
        let line = ModZipLine::split(line)
            .ok_or_else(|| bad("expected `<crc32|-> <size> <location> <name>`"))?;
        let directory = line.location == "@directory";
        let (name, legacy_name) = charset
            .names(line.name, &mut b.namer, directory)
            .ok_or_else(|| bad("empty name"))?;
        if directory {
            b.push(PlannedEntry {
                source: EntrySource::Directory,
                name,
                method: MethodChoice::Fixed(Method::Store),
                declared: Sizes::Known { size: 0, crc32: 0 },
                modified: None,
                legacy_name,
            })?;
            continue;
        }
        let size: u64 = line.size.parse().map_err(|_| bad("size is not a number"))?;
        let declared = match line.crc {
            "-" => Sizes::Length(size),
            hex => Sizes::Known {
                size,
                crc32: parse_crc(hex).ok_or_else(|| bad("crc32 is not 1 to 8 hex digits"))?,
            },
        };
        let location = match charset {
            NameCharset::Native | NameCharset::Separated(_) => std::borrow::Cow::Owned(
                raw::to_utf8(line.location).ok_or_else(|| bad("location is not UTF-8"))?,
            ),
            _ => std::borrow::Cow::Borrowed(line.location),
        };
        let path_and_query = check_location(&location).map_err(bad)?;
        b.push(PlannedEntry {
            source: EntrySource::Origin { path_and_query },
            name,
            method: MethodChoice::Fixed(Method::Store),
            declared,
            modified: None,
            legacy_name,
        })?;
    }
    Ok(ArchivePlan {
        file_name: None,
        entries: b.finish()?,
        on_error: OnError::Skip,
        modified: None,
        pass_headers: http::HeaderMap::new(),
        sizes: SizesFrom::Declared,
    })
}

/// How a mod_zip manifest's names go into the archive, from the manifest
/// response's headers, as mod_zip reads them:
/// - `X-Archive-Name-Sep: <sep>`: names are `<native><sep><utf8>`; the
///   native bytes go in the header without the UTF-8 flag, the UTF-8 part
///   in a Unicode Path field (an empty separator, or a name without it:
///   native bytes only);
/// - `X-Archive-Charset: native`: names are bytes in the reader's own
///   charset, written as they are, without the UTF-8 flag;
/// - `X-Archive-Charset: cp866` (any WHATWG encoding label: ibm866,
///   windows-1251, koi8-r, shift_jis, gbk, big5…): names are UTF-8,
///   converted to that charset (unmappable characters become `_`), with
///   the UTF-8 name in a Unicode Path field;
/// - otherwise (`utf8`, absent, or a charset sluice does not know, which is
///   logged): UTF-8 names with the UTF-8 flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameCharset {
    Utf8,
    Native,
    Legacy(&'static encoding_rs::Encoding),
    /// The separator (possibly empty).
    Separated(String),
}

impl NameCharset {
    pub fn from_headers(headers: &http::HeaderMap) -> Self {
        let text = |name: &str| {
            headers.get(name).map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .trim()
                    .trim_end_matches(';')
                    .trim()
                    .to_string()
            })
        };
        if let Some(sep) = text("x-archive-name-sep") {
            return NameCharset::Separated(sep);
        }
        let Some(charset) = text("x-archive-charset") else {
            return NameCharset::Utf8;
        };
        if charset.eq_ignore_ascii_case("native") {
            return NameCharset::Native;
        }
        match encoding_rs::Encoding::for_label(charset.as_bytes()) {
            Some(enc) if enc == encoding_rs::UTF_8 => NameCharset::Utf8,
            _ if charset.eq_ignore_ascii_case("utf8") => NameCharset::Utf8,
            Some(enc) if enc.output_encoding() == enc => NameCharset::Legacy(enc),
            _ => {
                tracing::warn!(%charset, "X-Archive-Charset names a charset sluice cannot write; names stay UTF-8");
                NameCharset::Utf8
            }
        }
    }

    /// The entry's sanitised, unique UTF-8 name (messages use it, and the
    /// Unicode Path field holds it) and its legacy header name, if any.
    /// Uniqueness is made on what the header holds: for native names, the
    /// bytes.
    fn names(
        &self,
        written: &str,
        namer: &mut Namer,
        directory: bool,
    ) -> Option<(String, Option<Box<LegacyName>>)> {
        let slash = |mut s: String| {
            if directory {
                s.push('/');
            }
            s
        };
        let legacy = |bytes: Vec<u8>, unicode_path: bool| {
            let mut bytes = bytes;
            if directory {
                bytes.push(b'/');
            }
            Some(Box::new(LegacyName {
                bytes: bytes.into_boxed_slice(),
                unicode_path,
            }))
        };
        match self {
            NameCharset::Utf8 => Some((slash(namer.unique(&names::sanitize(written)?)), None)),
            NameCharset::Legacy(enc) => {
                let (name, bytes) =
                    namer.unique_encoded(&names::sanitize(written)?, |n| encode_replacing(enc, n));
                Some((slash(name), legacy(bytes, true)))
            }
            NameCharset::Native | NameCharset::Separated(_) => {
                let (native, utf8) = match self {
                    NameCharset::Separated(sep) if !sep.is_empty() => {
                        match written.rfind(sep.as_str()) {
                            Some(at) => (&written[..at], Some(&written[at + sep.len()..])),
                            None => (written, None),
                        }
                    }
                    _ => (written, None),
                };
                // Sanitised and made unique in the byte-preserving text
                // form, so the checks see the ASCII they look for and the
                // bytes come back exactly.
                let bytes = raw::to_bytes(&namer.unique(&names::sanitize(native)?));
                let utf8 = utf8
                    .and_then(raw::to_utf8)
                    .and_then(|u| names::sanitize(&u));
                let unicode_path = utf8.is_some();
                let name = utf8
                    .or_else(|| names::sanitize(&String::from_utf8_lossy(&bytes)))
                    .unwrap_or_else(|| "_".to_string());
                Some((slash(name), legacy(bytes, unicode_path)))
            }
        }
    }
}

/// `name` in `enc`, with `_` for what it cannot hold (mod_zip asks iconv
/// for `//TRANSLIT//IGNORE`; a visible `_` loses less than a dropped letter).
fn encode_replacing(enc: &'static encoding_rs::Encoding, name: &str) -> Vec<u8> {
    let mut encoder = enc.new_encoder();
    let mut out = Vec::with_capacity(name.len());
    let mut rest = name;
    loop {
        let need = encoder
            .max_buffer_length_from_utf8_without_replacement(rest.len())
            .unwrap_or(rest.len() * 4 + 16);
        out.reserve(need);
        let mut buf = vec![0u8; need];
        let (result, read, written) =
            encoder.encode_from_utf8_without_replacement(rest, &mut buf, true);
        out.extend_from_slice(&buf[..written]);
        rest = &rest[read..];
        match result {
            encoding_rs::EncoderResult::Unmappable(_) => out.push(b'_'),
            encoding_rs::EncoderResult::InputEmpty => return out,
            encoding_rs::EncoderResult::OutputFull => continue,
        }
    }
}

/// Manifests in a native charset are bytes, not UTF-8. They are parsed as
/// text in which each byte above 0x7F stands for itself as a character of
/// the Private Use Area (U+E080..U+E0FF), so the line and field splitting
/// and the name checks (all ASCII) work unchanged, and the bytes come back
/// exactly.
mod raw {
    const BASE: u32 = 0xE000;

    /// The length of [`to_text`]'s string, before it is made.
    pub fn text_len(bytes: &[u8]) -> u64 {
        bytes
            .iter()
            .map(|&b| if b.is_ascii() { 1 } else { 3 })
            .sum()
    }

    pub fn to_text(bytes: &[u8]) -> String {
        bytes
            .iter()
            .map(|&b| {
                if b.is_ascii() {
                    char::from(b)
                } else {
                    char::from_u32(BASE + u32::from(b)).unwrap_or('_')
                }
            })
            .collect()
    }

    pub fn to_bytes(text: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(text.len());
        for c in text.chars() {
            match u32::from(c) {
                n if n < 0x80 => out.push(n as u8),
                n if (BASE + 0x80..=BASE + 0xFF).contains(&n) => out.push((n - BASE) as u8),
                // Only what sanitising inserts (`_`) reaches here in
                // practice; anything else keeps its UTF-8 form.
                _ => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            }
        }
        out
    }

    pub fn to_utf8(text: &str) -> Option<String> {
        String::from_utf8(to_bytes(text)).ok()
    }
}

/// The four fields of one mod_zip manifest entry, as written.
struct ModZipLine<'a> {
    crc: &'a str,
    size: &'a str,
    location: &'a str,
    name: &'a str,
}

impl<'a> ModZipLine<'a> {
    fn split(line: &'a str) -> Option<Self> {
        let mut rest = line;
        let mut field = || {
            let (f, after) = rest.split_once(' ')?;
            rest = after.trim_start_matches(' ');
            (!f.is_empty()).then_some(f)
        };
        let (crc, size, location) = (field()?, field()?, field()?);
        (!rest.is_empty()).then_some(ModZipLine {
            crc,
            size,
            location,
            name: rest,
        })
    }
}

fn too_many(limits: ManifestLimits) -> Error {
    unprocessable(format!(
        "manifest has more than {} entries (--zip-max-entries)",
        limits.max_entries
    ))
}

/// 1 to 8 hex digits, either case (mod_zip reads `0` for a directory as
/// well as `1A6349C5`); JSON manifests give all 8.
fn parse_crc(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

/// Characters percent-encoded in a source path (everything but unreserved
/// characters, `/` and a few sub-delims that are safe in a path).
const PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'[')
    .add(b']')
    .add(b'\\')
    .add(b'^')
    .add(b'|');

/// A JSON `source` is a plain (not encoded) path on the origin.
fn encode_source(source: &str) -> std::result::Result<String, &'static str> {
    if source.contains("://") || source.starts_with("//") {
        return Err("must be a path on the origin, not a URL");
    }
    let trimmed = source.trim_start_matches('/');
    if trimmed.is_empty() {
        return Err("is empty");
    }
    if trimmed.split('/').any(|seg| seg == ".." || seg == ".") {
        return Err("has a `.` or `..` segment");
    }
    if trimmed.chars().any(char::is_control) {
        return Err("has a control character");
    }
    let encoded = format!("/{}", utf8_percent_encode(trimmed, PATH));
    on_the_origin(encoded)
}

/// A source must pass the origin's own target check (`origin::target`),
/// which also reads it decoded once and twice: an entry the origin would
/// refuse is refused here, before the first byte, not listed as failed.
/// (Found by the json_manifest fuzzer: `%%…%00` encodes to a path whose
/// second decoding holds a NUL.)
fn on_the_origin(path_and_query: String) -> std::result::Result<String, &'static str> {
    match crate::origin::target::check(&path_and_query) {
        Ok(()) => Ok(path_and_query),
        Err(_) => Err("has a `..` segment or a NUL byte once decoded"),
    }
}

/// A mod_zip location is already URL-encoded; it must be an origin path.
/// As in mod_zip (whose subrequests resolve it against the server's
/// root), one without a leading `/` is taken from the root.
fn check_location(location: &str) -> std::result::Result<String, &'static str> {
    // A URL is refused by its path part; a query may hold `://` (`?u=http://…`).
    let path = location.split('?').next().unwrap_or(location);
    if path.starts_with("//") || path.contains("://") {
        return Err("location must be a path on the origin, not a URL");
    }
    if location.chars().any(|c| c.is_control() || c == ' ') {
        return Err("location has a space or control character");
    }
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    if decoded.split('/').any(|seg| seg == "..") {
        return Err("location has a `..` segment");
    }
    if path.is_empty() {
        return Err("location is empty");
    }
    on_the_origin(if location.starts_with('/') {
        location.to_string()
    } else {
        format!("/{location}")
    })
}

/// The download's file name: sanitised, folders dropped, `.zip` appended
/// when missing.
pub fn download_name(requested: &str) -> String {
    let base = names::sanitize(requested)
        .map(|s| names::file_name_of(&s).to_string())
        .unwrap_or_else(|| "download".into());
    if base.to_ascii_lowercase().ends_with(".zip") {
        base
    } else {
        format!("{base}.zip")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ManifestLimits = ManifestLimits { max_entries: 100 };

    fn json_plan(body: &[u8], limits: ManifestLimits, presets: &Presets) -> Result<ArchivePlan> {
        parse_json(body, limits, presets, &mut |_| Ok(()))
    }

    fn mod_zip_plan(body: &[u8], limits: ManifestLimits) -> Result<ArchivePlan> {
        parse_mod_zip(body, limits, &NameCharset::Utf8, &mut |_| Ok(()))
    }

    #[test]
    fn json_manifest_with_defaults() {
        let plan = json_plan(
            r#"{"name": "photos", "entries": [
                {"source": "2024/a.jpg", "name": "trip/a.jpg"},
                {"source": "/b.png", "size": 10, "crc32": "0000abcd"},
                {"source": "notes/readme", "size": 5},
                {"source": "x/a.jpg", "name": "trip/a.jpg", "mtime": 1700000000},
                {"source": "dir with space/ü?.txt"}
            ]}"#
            .as_bytes(),
            LIMITS,
            &Presets::default(),
        )
        .unwrap();
        assert_eq!(plan.file_name.as_deref(), Some("photos.zip"));
        assert_eq!(plan.on_error, OnError::Skip);
        let e = &plan.entries;
        assert_eq!(e[0].name, "trip/a.jpg");
        assert_eq!(
            e[0].source,
            EntrySource::Origin {
                path_and_query: "/2024/a.jpg".into()
            }
        );
        assert_eq!(e[0].method, MethodChoice::Fixed(Method::Store));
        assert_eq!(e[1].name, "b.png");
        assert_eq!(
            e[1].declared,
            Sizes::Known {
                size: 10,
                crc32: 0xabcd
            }
        );
        assert_eq!(e[2].method, MethodChoice::ByContentType);
        assert_eq!(e[2].declared, Sizes::Length(5));
        assert_eq!(e[3].name, "trip/a (1).jpg");
        assert!(e[3].modified.is_some());
        assert_eq!(e[4].name, "ü_.txt");
        assert_eq!(e[4].method, MethodChoice::Fixed(Method::Deflate));
        assert_eq!(e[4].source.describe(), "/dir%20with%20space/%C3%BC%3F.txt");
        assert!(!plan.is_known_size());
    }

    #[test]
    fn json_manifest_refusals() {
        let status = |body: &str| {
            json_plan(body.as_bytes(), LIMITS, &Presets::default())
                .unwrap_err()
                .kind
        };
        assert_eq!(status("{"), ErrorKind::InvalidRequest);
        assert_eq!(status(r#"{"entries": 3}"#), ErrorKind::Unprocessable);
        // The json_manifest fuzzer's finding: NUL on the second decoding.
        assert_eq!(
            status(r#"{"entries": [{"source":"%%%%%%%%%%%%%A%%%%%00"}]}"#),
            ErrorKind::Unprocessable
        );
        assert_eq!(
            status(r#"{"entries": [{"source": "http://evil/x"}]}"#),
            ErrorKind::Unprocessable
        );
        assert_eq!(
            status(r#"{"entries": [{"source": "//evil/x"}]}"#),
            ErrorKind::Unprocessable
        );
        assert_eq!(
            status(r#"{"entries": [{"source": "a/../../etc"}]}"#),
            ErrorKind::Unprocessable
        );
        assert_eq!(
            status(r#"{"entries": [{"source": "a.jpg", "crc32": "xyz"}]}"#),
            ErrorKind::Unprocessable
        );
        assert_eq!(
            status(r#"{"entries": [{"source": "a.jpg", "crc32": 5}]}"#),
            ErrorKind::Unprocessable
        );
        assert_eq!(
            status(r#"{"entries": [{"source": "a", "name": "../.."}]}"#),
            ErrorKind::Unprocessable
        );
        assert_eq!(
            status(r#"{"entries": [{"source": "a", "color": 1}]}"#),
            ErrorKind::Unprocessable
        );
        assert_eq!(
            status(r#"{"entries": [], "on_error": "explode"}"#),
            ErrorKind::Unprocessable
        );
        let many = format!(
            r#"{{"entries": [{}]}}"#,
            vec![r#"{"source": "a"}"#; 101].join(",")
        );
        assert_eq!(status(&many), ErrorKind::Unprocessable);
    }

    #[test]
    fn empty_manifest_is_a_valid_empty_archive() {
        let plan = json_plan(
            br#"{"entries": [], "on_error": "abort"}"#,
            LIMITS,
            &Presets::default(),
        )
        .unwrap();
        assert!(plan.entries.is_empty());
        assert!(plan.is_known_size());
        assert_eq!(plan.on_error, OnError::Abort);
    }

    fn processed(e: &PlannedEntry) -> (&str, usize, &VariantSpec) {
        match &e.source {
            EntrySource::Processed {
                path_and_query,
                group,
                variant,
            } => (path_and_query, *group, variant),
            other => panic!("not processed: {other:?}"),
        }
    }

    #[test]
    fn json_options_and_variants() {
        let presets = Presets::parse(&["thumb=rs:fit:100:100".to_string()]).unwrap();
        let plan = json_plan(
            br#"{"entries": [
                {"source": "a.jpg", "variants": [
                    {"name": "a_200.jpg", "options": "rs:fit:200:200"},
                    {"name": "a_1200.jpg", "options": "rs:fit:1200:1200/q:85"},
                    {"name": "sq/a", "options": "pr:thumb/f:webp"},
                    {"name": "a.png", "options": "w:50"},
                    {"name": "a_200.jpg", "options": "w:10/"}
                ]},
                {"source": "x/b.jpeg", "options": "w:300", "mtime": 1700000000},
                {"source": "c.gif", "options": "w:300"},
                {"source": "d.png", "options": "w:30/f:jpg"},
                {"source": "e.jpg", "name": "thumbs/e", "options": "w:30"},
                {"source": "a.jpg"}
            ]}"#,
            LIMITS,
            &presets,
        )
        .unwrap();
        let e = &plan.entries;
        let names: Vec<&str> = e.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "a_200.jpg",
                "a_1200.jpg",
                "sq/a",
                "a.png",
                "a_200 (1).jpg",
                "b.jpeg",
                "c.png",
                "d.jpg",
                "thumbs/e",
                "a.jpg"
            ]
        );
        let (path, group, v) = processed(&e[0]);
        assert_eq!((path, group), ("/a.jpg", 0));
        assert_eq!((v.options.width, v.options.height), (200, 200));
        assert_eq!(v.format, Some(OutputFormat::Jpeg));
        let (_, group, v) = processed(&e[1]);
        assert_eq!((group, v.options.quality), (0, 85));
        let (_, _, v) = processed(&e[2]);
        assert_eq!(v.options.width, 100);
        assert_eq!(v.format, Some(OutputFormat::Webp));
        assert_eq!(processed(&e[3]).2.format, Some(OutputFormat::Png));
        let (_, group, v) = processed(&e[5]);
        assert_eq!((group, v.format), (1, Some(OutputFormat::Jpeg)));
        assert!(e[5].modified.is_some());
        assert_eq!(processed(&e[6]).2.format, Some(OutputFormat::Png));
        assert_eq!(processed(&e[7]).2.format, Some(OutputFormat::Jpeg));
        // No format anywhere: the source's natural one, from its header.
        assert_eq!(processed(&e[8]).2.format, None);
        assert!(matches!(e[9].source, EntrySource::Origin { .. }));
        for p in &e[..9] {
            assert_eq!(p.method, MethodChoice::Fixed(Method::Store));
            assert_eq!(p.declared, Sizes::Unknown);
        }
        assert!(!plan.is_known_size());
    }

    #[test]
    fn json_options_refusals_name_the_entry() {
        let reason = |body: &str| {
            let e = json_plan(body.as_bytes(), LIMITS, &Presets::default()).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Unprocessable, "{}", e.reason);
            e.reason.into_owned()
        };
        let r = reason(
            r#"{"entries": [{"source": "a.jpg"}, {"source": "b.jpg", "options": "rs:fit:10/bogus:1"}]}"#,
        );
        assert!(r.contains("entry 1") && r.contains("bogus"), "{r}");
        let r = reason(
            r#"{"entries": [{"source": "b.jpg", "variants": [{"name": "x.jpg", "options": "w:1"}, {"name": "y.jpg", "options": "q:500"}]}]}"#,
        );
        assert!(r.contains("entry 0 variant 1"), "{r}");
        let r = reason(
            r#"{"entries": [{"source": "b.jpg", "options": "w:1", "variants": [{"name": "x.jpg", "options": "w:1"}]}]}"#,
        );
        assert!(r.contains("not both"), "{r}");
        let r = reason(r#"{"entries": [{"source": "b.jpg", "options": "w:1", "size": 10}]}"#);
        assert!(r.contains("size/crc32"), "{r}");
        let r =
            reason(r#"{"entries": [{"source": "b.jpg", "options": "w:1", "crc32": "0000abcd"}]}"#);
        assert!(r.contains("size/crc32"), "{r}");
        let r = reason(r#"{"entries": [{"source": "b.jpg", "variants": [{"options": "w:1"}]}]}"#);
        assert!(r.contains("name"), "{r}");
        let r = reason(r#"{"entries": [{"source": "b.jpg", "variants": []}]}"#);
        assert!(r.contains("empty"), "{r}");
        let r = reason(r#"{"entries": [{"source": "noext", "options": "w:1"}]}"#);
        assert!(r.contains("output format"), "{r}");
        reason(
            r#"{"entries": [{"source": "b.jpg", "variants": [{"name": "x.jpg", "options": "w:1", "size": 3}]}]}"#,
        );
        reason(r#"{"entries": [{"source": "b.jpg", "options": 5}]}"#);
        let many = format!(
            r#"{{"entries": [{{"source": "a.jpg", "variants": [{}]}}]}}"#,
            vec![r#"{"name": "a.jpg", "options": "w:1"}"#; 101].join(",")
        );
        assert!(reason(&many).contains("more than 100"));
    }

    #[test]
    fn mod_zip_manifest() {
        let plan = mod_zip_plan(
            b"1a2b3c4d 1024 /files/a%20b.jpg photos/a b.jpg\r\n\
              - 5 /files/c.txt?sig=1 c.txt\n\n\
              00000000 0 /files/empty ../empty\n",
            LIMITS,
        )
        .unwrap();
        let e = &plan.entries;
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].name, "photos/a b.jpg");
        assert_eq!(e[0].source.describe(), "/files/a%20b.jpg");
        assert_eq!(
            e[0].declared,
            Sizes::Known {
                size: 1024,
                crc32: 0x1a2b_3c4d
            }
        );
        assert_eq!(e[1].declared, Sizes::Length(5));
        assert_eq!(e[1].source.describe(), "/files/c.txt?sig=1");
        assert_eq!(e[1].method, MethodChoice::Fixed(Method::Store));
        assert_eq!(e[2].name, "empty");
        // Every size is given (a Content-Length), not every CRC (no ranges).
        assert!(plan.is_known_size());
        assert!(!plan.is_rangeable());
    }

    fn charset_plan(body: &[u8], charset: &NameCharset) -> ArchivePlan {
        parse_mod_zip(body, LIMITS, charset, &mut |_| Ok(())).unwrap()
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, http::HeaderValue::from_static(v));
        }
        h
    }

    /// A native manifest is parsed in a text form of up to 3 bytes per
    /// byte; the meter hears of it before it is made (a 3000-byte name,
    /// cut to 255 in the plan, would otherwise be counted as the plan).
    #[test]
    fn a_native_manifest_counts_its_text_form() {
        let mut body = b"- 1 /a ".to_vec();
        body.extend(std::iter::repeat_n(0xE9, 3000));
        body.push(b'\n');
        let mut metered = 0;
        parse_mod_zip(&body, LIMITS, &NameCharset::Native, &mut |n| {
            metered = metered.max(n);
            Ok(())
        })
        .unwrap();
        // The line as text: 7 + 3 * 3000 + 1 bytes.
        assert!(metered > 7 + 3 * 3000, "metered {metered}");
    }

    /// Two names the charset writes alike (letters it lacks become `_`)
    /// get different header bytes; found by the mod_zip manifest fuzzer
    /// (corpus file 8c72a67b…), which checks header names are unique.
    #[test]
    fn names_that_encode_alike_are_numbered_in_the_legacy_charset() {
        let plan = charset_plan(
            "- 1 /a _.txt\n- 1 /b ќ.txt\n- 1 /c ђ.TXT\n".as_bytes(),
            &NameCharset::Legacy(encoding_rs::IBM866),
        );
        let header = |i: usize| plan.entries[i].legacy_name.as_ref().unwrap().bytes.to_vec();
        assert_eq!(header(0), b"_.txt");
        assert_eq!(header(1), b"_ (1).txt");
        assert_eq!(header(2), b"_ (2).TXT");
        // The Unicode Path names follow the numbering.
        assert_eq!(plan.entries[1].name, "ќ (1).txt");
        assert_eq!(plan.entries[2].name, "ђ (2).TXT");
    }

    /// mod_zip's README: `X-Archive-Charset` and `X-Archive-Name-Sep`.
    #[test]
    fn mod_zip_names_in_legacy_charsets() {
        let from = |pairs| NameCharset::from_headers(&headers(pairs));
        assert_eq!(from(&[]), NameCharset::Utf8);
        assert_eq!(from(&[("x-archive-charset", "utf8")]), NameCharset::Utf8);
        assert_eq!(
            from(&[("x-archive-charset", "native;")]),
            NameCharset::Native
        );
        assert_eq!(
            from(&[("x-archive-charset", "CP866")]),
            NameCharset::Legacy(encoding_rs::IBM866)
        );
        assert_eq!(
            from(&[("x-archive-charset", "no-such-charset")]),
            NameCharset::Utf8
        );
        assert_eq!(
            from(&[("x-archive-name-sep", "/"), ("x-archive-charset", "cp866")]),
            NameCharset::Separated("/".into())
        );

        // cp866: UTF-8 names converted, unmappable characters as `_`, the
        // UTF-8 name kept for the Unicode Path field.
        let plan = charset_plan(
            "- 3 /a a.txt\n- 3 /b Фото/лето €.jpg\n0 0 @directory Папка\n".as_bytes(),
            &NameCharset::Legacy(encoding_rs::IBM866),
        );
        let e = &plan.entries;
        assert!(e[0]
            .legacy_name
            .as_ref()
            .is_some_and(|l| &*l.bytes == b"a.txt"));
        assert_eq!(e[1].name, "Фото/лето €.jpg");
        let l = e[1].legacy_name.as_ref().unwrap();
        assert!(l.unicode_path);
        assert_eq!(
            &*l.bytes,
            &[
                0x94, 0xAE, 0xE2, 0xAE, b'/', 0xAB, 0xA5, 0xE2, 0xAE, b' ', b'_', b'.', b'j', b'p',
                b'g'
            ][..]
        );
        assert_eq!(
            &*e[2].legacy_name.as_ref().unwrap().bytes,
            &[0x8F, 0xA0, 0xAF, 0xAA, 0xA0, b'/'][..]
        );

        // native: bytes as they are, sanitised where they are ASCII, made
        // unique by their bytes; no Unicode Path.
        let plan = charset_plan(
            b"- 3 /a \x94\xae\xe2\xae.jpg\n- 3 /b \x94\xae\xe2\xae.jpg\n- 3 /c ../x\x80:y\n",
            &NameCharset::Native,
        );
        let bytes: Vec<&[u8]> = plan
            .entries
            .iter()
            .map(|e| &*e.legacy_name.as_ref().unwrap().bytes)
            .collect();
        assert_eq!(bytes[0], b"\x94\xae\xe2\xae.jpg");
        assert_eq!(bytes[1], b"\x94\xae\xe2\xae (1).jpg");
        assert_eq!(bytes[2], b"x\x80_y");
        assert!(plan
            .entries
            .iter()
            .all(|e| !e.legacy_name.as_ref().unwrap().unicode_path));
        assert!(plan.entries.iter().all(|e| names::is_safe(&e.name)));

        // Name-Sep: `<native><sep><utf8>`; without the separator, native only.
        let mut body = b"- 3 /a \x94.txt|".to_vec();
        body.extend_from_slice("Ф.txt\n- 3 /b plain.txt\n".as_bytes());
        let plan = charset_plan(&body, &NameCharset::Separated("|".into()));
        let e = &plan.entries;
        assert_eq!(e[0].name, "Ф.txt");
        let l = e[0].legacy_name.as_ref().unwrap();
        assert_eq!((&*l.bytes, l.unicode_path), (&b"\x94.txt"[..], true));
        let l = e[1].legacy_name.as_ref().unwrap();
        assert_eq!((&*l.bytes, l.unicode_path), (&b"plain.txt"[..], false));
    }

    /// The manifests of mod_zip's own test suite (t/nginx/html/*.txt),
    /// as its parser reads them.
    #[test]
    fn mod_zip_test_suite_manifests() {
        let sources = |body: &str| -> Vec<(String, String, Sizes)> {
            mod_zip_plan(body.as_bytes(), LIMITS)
                .unwrap()
                .entries
                .into_iter()
                .map(|e| (e.source.describe().to_string(), e.name, e.declared))
                .collect()
        };
        let known = |size, crc32| Sizes::Known { size, crc32 };
        // zip-empty-dirs.txt: runs of spaces, `0` as a CRC, `@directory`.
        let e = sources(
            "1a6349c5 24 /file1.txt file1.txt\n0        0  @directory empty_dir1/\n\
             5d70c4d3 25 /file2.txt file2.txt\n0        0  @directory empty_dir2/\n",
        );
        assert_eq!(
            e[0],
            (
                "/file1.txt".into(),
                "file1.txt".into(),
                known(24, 0x1a63_49c5)
            )
        );
        assert_eq!(
            e[1],
            ("@directory".into(), "empty_dir1/".into(), known(0, 0))
        );
        assert_eq!(e[3].1, "empty_dir2/");
        // zip-not-empty-dirs.txt: locations that merely start with `@`.
        let e =
            sources("1a6349c5 24 @not_directory file1.txt\n5d70c4d3 25 @directory_not file2.txt\n");
        assert_eq!(e[0].0, "/@not_directory");
        assert_eq!(e[1].0, "/@directory_not");
        // zip-uppercase-crc.txt and zip-missing-crc.txt.
        let e = sources("1A6349C5 24 /file1.txt file1.txt\n5D70C4d3 25 /file2.txt file2.txt");
        assert_eq!(e[1].2, known(25, 0x5d70_c4d3));
        let e = sources("- 24 /file1.txt file1.txt\n5d70c4d3 25 /file2.txt file2.txt\n");
        assert_eq!(e[0].2, Sizes::Length(24));
        // zip-spaces-plus.txt: the location stays encoded for the origin.
        let e = sources("1a6349c5 24 /file1%20with%20space%20+%20plus.txt file1a.txt\n");
        assert_eq!(e[0].0, "/file1%20with%20space%20+%20plus.txt");
        // CRLF, CR alone and blank lines between entries; names with spaces.
        let e = sources("- 1 /a a b.txt\r\n\r\n- 2 b  c.txt\r- 3 /c?x=1 c.txt\r\n");
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].1, "a b.txt");
        assert_eq!((e[1].0.as_str(), e[1].1.as_str()), ("/b", "c.txt"));
        assert_eq!(e[2].0, "/c?x=1");
        // A query may carry a URL; only the path part must not be one.
        let e = sources("- 1 /get?u=http://x/y a.txt\n");
        assert_eq!(e[0].0, "/get?u=http://x/y");
        // zip-missing-size.txt: mod_zip's parser refuses a `-` size.
        assert!(mod_zip_plan(b"5d70c4d3 - /file2.txt file2.txt", LIMITS).is_err());
    }

    #[test]
    fn mod_zip_refusals() {
        let status = |body: &str| mod_zip_plan(body.as_bytes(), LIMITS).unwrap_err().kind;
        assert_eq!(status("- 5 /a"), ErrorKind::Unprocessable);
        assert_eq!(status("- five /a a"), ErrorKind::Unprocessable);
        assert_eq!(status("zz 5 /a a"), ErrorKind::Unprocessable);
        assert_eq!(status("123456789 5 /a a"), ErrorKind::Unprocessable);
        assert_eq!(status("- 5 //evil/a a"), ErrorKind::Unprocessable);
        assert_eq!(status("- 5 /a%2500 a"), ErrorKind::Unprocessable);
        assert_eq!(status("- 5 http://evil/a a"), ErrorKind::Unprocessable);
        assert_eq!(status("- 5 /a/%2e%2e/b a"), ErrorKind::Unprocessable);
        assert_eq!(status(&"- 1 /a a\n".repeat(101)), ErrorKind::Unprocessable);
    }

    #[test]
    fn download_names() {
        assert_eq!(download_name("photos.zip"), "photos.zip");
        assert_eq!(download_name("../x/Trip"), "Trip.zip");
        assert_eq!(download_name(""), "download.zip");
    }
}
