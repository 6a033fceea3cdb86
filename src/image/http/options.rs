//! Processing options in imgproxy's grammar (the data they describe is
//! [`crate::image::plan::options`]): `name:arg1:arg2`, one option per
//! path segment, applied left to right (a later option overrides an earlier
//! one; a preset applies its options where it is named).
//!
//! [`Options::normalized`] renders the effective options in one fixed order,
//! so two URLs that mean the same thing (`rs:fit:300` and `rt:fit/w:300`)
//! share one ETag and one coalescing key.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::error::{Error, Result};
use crate::image::plan::options::MAX_DIMENSION;
pub use crate::image::plan::options::{
    Crop, Gravity, GravityType, Options, OutputFormat, ResizingType,
};

impl ResizingType {
    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "fit" => ResizingType::Fit,
            "fill" => ResizingType::Fill,
            "fill-down" => ResizingType::FillDown,
            "force" => ResizingType::Force,
            "auto" => ResizingType::Auto,
            other => return Err(bad(format!("unknown resizing type {other:?}"))),
        })
    }
    fn as_str(self) -> &'static str {
        match self {
            ResizingType::Fit => "fit",
            ResizingType::Fill => "fill",
            ResizingType::FillDown => "fill-down",
            ResizingType::Force => "force",
            ResizingType::Auto => "auto",
        }
    }
}

impl Gravity {
    fn parse(args: &[&str]) -> Result<Self> {
        let mut g = Gravity::default();
        let Some(&kind) = args.first() else {
            return Err(bad("gravity needs a type"));
        };
        g.kind = match kind {
            "ce" | "sm" => GravityType::Center,
            "no" => GravityType::North,
            "so" => GravityType::South,
            "ea" => GravityType::East,
            "we" => GravityType::West,
            "noea" => GravityType::NorthEast,
            "nowe" => GravityType::NorthWest,
            "soea" => GravityType::SouthEast,
            "sowe" => GravityType::SouthWest,
            "fp" => {
                let x = float(args.get(1).copied().unwrap_or(""), "focus x")?;
                let y = float(args.get(2).copied().unwrap_or(""), "focus y")?;
                if !(0.0..=1.0).contains(&x) || !(0.0..=1.0).contains(&y) {
                    return Err(bad("focus point coordinates must be within 0..1"));
                }
                return Ok(Gravity {
                    kind: GravityType::FocusPoint(x, y),
                    ..g
                });
            }
            other => return Err(bad(format!("unknown gravity {other:?}"))),
        };
        if let Some(x) = nonempty(args.get(1)) {
            g.x_offset = float(x, "gravity x offset")?;
        }
        if let Some(y) = nonempty(args.get(2)) {
            g.y_offset = float(y, "gravity y offset")?;
        }
        Ok(g)
    }

    fn render(&self, out: &mut String) {
        let kind = match self.kind {
            GravityType::Center => "ce",
            GravityType::North => "no",
            GravityType::South => "so",
            GravityType::East => "ea",
            GravityType::West => "we",
            GravityType::NorthEast => "noea",
            GravityType::NorthWest => "nowe",
            GravityType::SouthEast => "soea",
            GravityType::SouthWest => "sowe",
            GravityType::FocusPoint(x, y) => {
                let _ = write!(out, "fp:{x}:{y}");
                return;
            }
        };
        let _ = write!(out, "{kind}:{}:{}", self.x_offset, self.y_offset);
    }
}

/// Longest `cb` value: it ends up in ETags and log lines.
const MAX_CACHE_BUSTER: usize = 64;

/// Named option strings from `--preset name=opts`.
#[derive(Debug, Clone, Default)]
pub struct Presets {
    by_name: HashMap<String, Vec<String>>,
}

impl Presets {
    /// Parse `name=opt/opt/...` definitions. Each is validated now, so a bad
    /// preset stops start-up instead of failing requests.
    pub fn parse(defs: &[String]) -> std::result::Result<Self, String> {
        let mut presets = Presets::default();
        for def in defs {
            let (name, opts) = def
                .split_once('=')
                .ok_or_else(|| format!("--preset {def:?}: expected name=options"))?;
            let segments: Vec<String> = opts
                .split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            presets.by_name.insert(name.to_string(), segments);
        }
        // Validate after all are known (presets may name other presets).
        for (name, segments) in &presets.by_name {
            let mut o = Options::default();
            for s in segments {
                o.apply(s, &presets, 1)
                    .map_err(|e| format!("--preset {name}: {}", e.reason))?;
            }
        }
        Ok(presets)
    }
}

/// Deepest preset-within-preset nesting; stops cycles.
const MAX_PRESET_DEPTH: u8 = 4;

impl Options {
    /// Parse option segments (already split at `/`). The `default` preset,
    /// if defined, applies first, as in imgproxy.
    pub fn parse<'a>(
        segments: impl IntoIterator<Item = &'a str>,
        presets: &Presets,
    ) -> Result<Self> {
        let mut o = Options::default();
        if let Some(default) = presets.by_name.get("default") {
            for s in default {
                o.apply(s, presets, 1)?;
            }
        }
        for s in segments {
            o.apply(s, presets, 0)?;
        }
        Ok(o)
    }

    /// Apply one `name:args` segment.
    pub fn apply(&mut self, segment: &str, presets: &Presets, depth: u8) -> Result<()> {
        let mut parts = segment.split(':');
        let name = parts.next().unwrap_or("");
        let args: Vec<&str> = parts.collect();
        let arg = |i: usize| nonempty(args.get(i));
        match name {
            "rs" | "resize" => {
                max_args(name, &args, 5)?;
                if let Some(t) = arg(0) {
                    self.resizing_type = ResizingType::parse(t)?;
                }
                self.set_size(&args[args.len().min(1)..])?;
            }
            "s" | "size" => {
                max_args(name, &args, 4)?;
                self.set_size(&args)?;
            }
            "rt" | "resizing_type" => {
                max_args(name, &args, 1)?;
                self.resizing_type = ResizingType::parse(arg(0).unwrap_or(""))?;
            }
            "w" | "width" => {
                max_args(name, &args, 1)?;
                self.width = dimension(arg(0).unwrap_or(""), "width")?;
            }
            "h" | "height" => {
                max_args(name, &args, 1)?;
                self.height = dimension(arg(0).unwrap_or(""), "height")?;
            }
            "dpr" => {
                max_args(name, &args, 1)?;
                let d = float(arg(0).unwrap_or(""), "dpr")?;
                if !(d > 0.0 && d <= 8.0) {
                    return Err(bad("dpr must be within (0, 8]"));
                }
                self.dpr = d;
            }
            "el" | "enlarge" => {
                max_args(name, &args, 1)?;
                self.enlarge = boolean(arg(0).unwrap_or(""))?;
            }
            "ex" | "extend" => {
                if boolean(arg(0).unwrap_or("0"))? {
                    return Err(bad("extend is not supported"));
                }
            }
            "g" | "gravity" => {
                max_args(name, &args, 3)?;
                self.gravity = Gravity::parse(&args)?;
            }
            "c" | "crop" => {
                max_args(name, &args, 5)?;
                let width = float(arg(0).unwrap_or("0"), "crop width")?;
                let height = float(arg(1).unwrap_or("0"), "crop height")?;
                if width < 0.0 || height < 0.0 {
                    return Err(bad("crop sizes must not be negative"));
                }
                let gravity = if args.len() > 2 && arg(2).is_some() {
                    Some(Gravity::parse(&args[2..])?)
                } else {
                    None
                };
                self.crop = if width == 0.0 && height == 0.0 {
                    None
                } else {
                    Some(Crop {
                        width,
                        height,
                        gravity,
                    })
                };
            }
            "q" | "quality" => {
                max_args(name, &args, 1)?;
                let q: u8 = arg(0)
                    .and_then(|s| s.parse().ok())
                    .filter(|q| *q <= 100)
                    .ok_or_else(|| bad("quality must be 0..100"))?;
                self.quality = q;
            }
            "f" | "format" | "ext" => {
                max_args(name, &args, 1)?;
                self.format = output_format(arg(0).unwrap_or(""))?;
            }
            "ar" | "auto_rotate" => {
                max_args(name, &args, 1)?;
                self.auto_rotate = boolean(arg(0).unwrap_or(""))?;
            }
            "sm" | "strip_metadata" => {
                max_args(name, &args, 1)?;
                self.strip_metadata = boolean(arg(0).unwrap_or(""))?;
            }
            "bg" | "background" => {
                self.background = match args.as_slice() {
                    [] | [""] => None,
                    [hex] => Some(hex_colour(hex)?),
                    [r, g, b] => Some([channel(r)?, channel(g)?, channel(b)?]),
                    _ => return Err(bad("background is bg:R:G:B or bg:hex")),
                };
            }
            "fn" | "filename" => {
                max_args(name, &args, 2)?;
                let raw = arg(0).ok_or_else(|| bad("filename needs a value"))?;
                let encoded = arg(1).map(boolean).transpose()?.unwrap_or(false);
                let decoded = if encoded {
                    let bytes = super::url::base64url_decode(raw)
                        .ok_or_else(|| bad("filename is not valid base64url"))?;
                    String::from_utf8(bytes).map_err(|_| bad("filename is not UTF-8"))?
                } else {
                    percent_encoding::percent_decode_str(raw)
                        .decode_utf8()
                        .map_err(|_| bad("filename is not UTF-8"))?
                        .into_owned()
                };
                self.filename = Some(decoded);
            }
            "cb" | "cachebuster" => {
                max_args(name, &args, 1)?;
                let value = arg(0).unwrap_or("");
                if value.len() > MAX_CACHE_BUSTER
                    || !value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
                {
                    return Err(bad(format!(
                        "cachebuster is at most {MAX_CACHE_BUSTER} of A-Z a-z 0-9 - _ . ~"
                    )));
                }
                self.cache_buster = (!value.is_empty()).then(|| value.to_string());
            }
            "att" | "return_attachment" => {
                max_args(name, &args, 1)?;
                self.attachment = boolean(arg(0).unwrap_or(""))?;
            }
            "pr" | "preset" => {
                if depth >= MAX_PRESET_DEPTH {
                    return Err(bad("presets nest too deeply"));
                }
                for p in &args {
                    let segments = presets
                        .by_name
                        .get(*p)
                        .ok_or_else(|| bad(format!("unknown preset {p:?}")))?;
                    for s in segments {
                        self.apply(s, presets, depth + 1)?;
                    }
                }
            }
            "" => return Err(bad("empty option")),
            other => return Err(bad(format!("unknown option {other:?}"))),
        }
        Ok(())
    }

    /// `width:height:enlarge:extend`, each may be empty (= unchanged).
    fn set_size(&mut self, args: &[&str]) -> Result<()> {
        if let Some(w) = nonempty(args.first()) {
            self.width = dimension(w, "width")?;
        }
        if let Some(h) = nonempty(args.get(1)) {
            self.height = dimension(h, "height")?;
        }
        if let Some(e) = nonempty(args.get(2)) {
            self.enlarge = boolean(e)?;
        }
        if let Some(x) = nonempty(args.get(3)) {
            if boolean(x)? {
                return Err(bad("extend is not supported"));
            }
        }
        Ok(())
    }

    /// The effective options in one fixed order, output format excluded
    /// (it may depend on `Accept`; callers add the chosen format).
    pub fn normalized(&self) -> String {
        let mut s = String::with_capacity(96);
        let _ = write!(
            s,
            "rs:{}:{}:{}:{}/dpr:{}/g:",
            self.resizing_type.as_str(),
            self.width,
            self.height,
            u8::from(self.enlarge),
            self.dpr
        );
        self.gravity.render(&mut s);
        if let Some(c) = &self.crop {
            let _ = write!(s, "/c:{}:{}", c.width, c.height);
            if let Some(g) = &c.gravity {
                s.push(':');
                g.render(&mut s);
            }
        }
        let _ = write!(
            s,
            "/q:{}/ar:{}/sm:{}",
            self.quality,
            u8::from(self.auto_rotate),
            u8::from(self.strip_metadata)
        );
        if let Some([r, g, b]) = self.background {
            let _ = write!(s, "/bg:{r}:{g}:{b}");
        }
        if let Some(cb) = &self.cache_buster {
            let _ = write!(s, "/cb:{cb}");
        }
        s
    }
}

fn bad(reason: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::invalid_request(reason)
}

fn nonempty<'a>(s: Option<&&'a str>) -> Option<&'a str> {
    s.copied().filter(|s| !s.is_empty())
}

fn max_args(name: &str, args: &[&str], max: usize) -> Result<()> {
    if args.len() > max {
        return Err(bad(format!(
            "option {name:?} takes at most {max} arguments"
        )));
    }
    Ok(())
}

/// imgproxy's booleans: `1`/`t`/`true` and `0`/`f`/`false`.
fn boolean(s: &str) -> Result<bool> {
    match s {
        "1" | "t" | "true" => Ok(true),
        "0" | "f" | "false" => Ok(false),
        other => Err(bad(format!("{other:?} is not a boolean"))),
    }
}

fn dimension(s: &str, what: &str) -> Result<u32> {
    s.parse::<u32>()
        .ok()
        .filter(|d| *d <= MAX_DIMENSION)
        .ok_or_else(|| bad(format!("{what} must be an integer 0..{MAX_DIMENSION}")))
}

fn float(s: &str, what: &str) -> Result<f64> {
    s.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .ok_or_else(|| bad(format!("{what} must be a number")))
}

fn channel(s: &str) -> Result<u8> {
    s.parse().map_err(|_| bad("background channels are 0..255"))
}

fn hex_colour(s: &str) -> Result<[u8; 3]> {
    let ok = s.len() == 6 && s.bytes().all(|b| b.is_ascii_hexdigit());
    if !ok {
        return Err(bad("background hex colour must be 6 hex digits"));
    }
    let byte = |i: usize| u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| bad("bad hex colour"));
    Ok([byte(0)?, byte(2)?, byte(4)?])
}

/// The output format an extension asks for (`jpg`, `jpeg`, `png`, `webp`;
/// `auto` or none: chosen later from `Accept`); 400 for others.
pub fn output_format(ext: &str) -> Result<Option<OutputFormat>> {
    if ext.is_empty() || ext.eq_ignore_ascii_case("auto") {
        return Ok(None);
    }
    OutputFormat::from_extension(ext)
        .map(Some)
        .ok_or_else(|| bad(format!("unsupported output format {ext:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn parse(s: &str) -> Result<Options> {
        Options::parse(s.split('/'), &Presets::default())
    }

    #[test]
    fn resize_sets_type_size_and_enlarge() {
        let o = parse("rs:fill:300:400:1").unwrap();
        assert_eq!(o.resizing_type, ResizingType::Fill);
        assert_eq!((o.width, o.height, o.enlarge), (300, 400, true));
        let o = parse("rs:fit:300").unwrap();
        assert_eq!((o.width, o.height), (300, 0));
    }

    #[test]
    fn equivalent_urls_normalize_the_same() {
        let a = parse("rs:fit:300:200").unwrap();
        let b = parse("rt:fit/w:300/h:200").unwrap();
        let c = parse("size:300:200/resizing_type:fit").unwrap();
        assert_eq!(a.normalized(), b.normalized());
        assert_eq!(a.normalized(), c.normalized());
        assert_ne!(
            a.normalized(),
            parse("rs:fill:300:200").unwrap().normalized()
        );
    }

    #[test]
    fn a_cache_buster_changes_the_identity_not_the_picture() {
        let plain = parse("w:300").unwrap();
        let busted = parse("w:300/cb:2026-11").unwrap();
        assert_ne!(plain.normalized(), busted.normalized());
        assert_eq!(busted.cache_buster.as_deref(), Some("2026-11"));
        assert_eq!(
            parse("w:300/cachebuster:").unwrap().normalized(),
            plain.normalized()
        );
        let e = parse("w:300/cb:a%2Fb").unwrap_err();
        assert!(e.to_string().contains("cachebuster"), "{e}");
        assert!(parse(&format!("cb:{}", "x".repeat(65))).is_err());
    }

    #[test]
    fn the_normal_form_parses_back_to_itself() {
        for s in [
            "rs:fill-down:300:200:1/g:fp:0.25:0.5/c:0.5:0.5:soea:3:4/bg:1:2:3/q:55/sm:0/ar:0/dpr:2.5",
            "w:10",
            "c:100:0",
            "w:10/cb:v2.1",
        ] {
            let n = parse(s).unwrap().normalized();
            assert_eq!(parse(&n).unwrap().normalized(), n, "{s}");
        }
    }

    #[test]
    fn later_options_override_earlier_ones() {
        let o = parse("w:100/w:200/q:50/quality:70").unwrap();
        assert_eq!((o.width, o.quality), (200, 70));
    }

    #[test]
    fn unknown_option_is_a_400_naming_it() {
        let e = parse("rs:fit:10/frobnicate:3").unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidRequest);
        assert!(e.reason.contains("frobnicate"), "{}", e.reason);
    }

    #[test]
    fn bad_arguments_are_400() {
        for s in [
            "rs:squash:10",
            "w:-1",
            "w:99999999",
            "q:101",
            "dpr:0",
            "g:up",
            "f:tiff",
            "el:maybe",
            "bg:12345",
            "c:-1:5",
            "rs:fit:1:2:0:1",
            "w:1:2",
        ] {
            assert_eq!(parse(s).unwrap_err().kind, ErrorKind::InvalidRequest, "{s}");
        }
    }

    #[test]
    fn gravity_crop_background_and_names() {
        let o = parse("g:soea:5:6/c:0.5:200:nowe/bg:ff8000/fn:a%20b/att:1/ar:0/sm:f").unwrap();
        assert_eq!(o.gravity.kind, GravityType::SouthEast);
        assert_eq!((o.gravity.x_offset, o.gravity.y_offset), (5.0, 6.0));
        let c = o.crop.unwrap();
        assert_eq!((c.width, c.height), (0.5, 200.0));
        assert_eq!(c.gravity.unwrap().kind, GravityType::NorthWest);
        assert_eq!(o.background, Some([255, 128, 0]));
        assert_eq!(o.filename.as_deref(), Some("a b"));
        assert!(o.attachment && !o.auto_rotate && !o.strip_metadata);
        let o = parse("g:sm/bg:1:2:3/fn:aGkuanBn:1").unwrap();
        assert_eq!(o.gravity.kind, GravityType::Center);
        assert_eq!(o.background, Some([1, 2, 3]));
        assert_eq!(o.filename.as_deref(), Some("hi.jpg"));
        let o = parse("g:fp:0.25:0.75").unwrap();
        assert_eq!(o.gravity.kind, GravityType::FocusPoint(0.25, 0.75));
    }

    #[test]
    fn formats_and_auto() {
        assert_eq!(parse("f:webp").unwrap().format, Some(OutputFormat::Webp));
        assert_eq!(parse("ext:jpeg").unwrap().format, Some(OutputFormat::Jpeg));
        assert_eq!(parse("f:png/f:auto").unwrap().format, None);
    }

    #[test]
    fn presets_apply_in_place_and_default_first() {
        let presets = Presets::parse(&[
            "thumb=rs:fill:100:100/q:60".to_string(),
            "default=q:90/f:png".to_string(),
        ])
        .unwrap();
        let o = Options::parse(["pr:thumb"], &presets).unwrap();
        assert_eq!(
            (o.width, o.quality, o.format),
            (100, 60, Some(OutputFormat::Png))
        );
        let o = Options::parse(["pr:thumb", "q:10"], &presets).unwrap();
        assert_eq!(o.quality, 10);
        let o = Options::parse(["w:5"], &presets).unwrap();
        assert_eq!(o.quality, 90);
        let e = Options::parse(["pr:nope"], &presets).unwrap_err();
        assert!(e.reason.contains("nope"));
    }

    #[test]
    fn bad_or_cyclic_presets_fail_at_start_up() {
        assert!(Presets::parse(&["x=bogus:1".to_string()]).is_err());
        assert!(Presets::parse(&["noequals".to_string()]).is_err());
        assert!(Presets::parse(&["a=pr:b".to_string(), "b=pr:a".to_string()]).is_err());
    }
}
