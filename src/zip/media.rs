//! STORE or DEFLATE: formats that are already compressed (JPEG, PNG, WebP,
//! GIF, AVIF, HEIC, JPEG XL, archives, audio, video) are stored, since
//! deflating them costs CPU and saves nothing; everything else is deflated.
//! Decided from the entry's name, or, when the name has no known extension,
//! from the origin's Content-Type.

use super::writer::Method;

/// How an entry's method is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodChoice {
    Fixed(Method),
    /// Decided when the origin's headers arrive.
    ByContentType,
}

const COMPRESSED_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "jpe", "jfif", "png", "apng", "webp", "gif", "avif", "heic", "heif", "jxl",
    "zip", "gz", "tgz", "bz2", "xz", "zst", "7z", "rar", "br", "mp4", "m4v", "mov", "webm", "mkv",
    "avi", "mp3", "m4a", "aac", "ogg", "oga", "opus", "flac", "woff", "woff2",
];

/// The method for a name with a recognisable extension; `None` without one.
pub fn choose_by_name(name: &str) -> Option<Method> {
    let file = name.rsplit('/').next().unwrap_or(name);
    let (stem, ext) = file.rsplit_once('.')?;
    if stem.is_empty() || ext.is_empty() || ext.len() > 5 {
        return None;
    }
    let ext = ext.to_ascii_lowercase();
    Some(if COMPRESSED_EXTENSIONS.contains(&ext.as_str()) {
        Method::Store
    } else {
        Method::Deflate
    })
}

/// The method for an origin Content-Type (`None`: deflate).
pub fn choose_by_content_type(content_type: Option<&str>) -> Method {
    let Some(ct) = content_type else {
        return Method::Deflate;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or(ct)
        .trim()
        .to_ascii_lowercase();
    let compressed = match essence.split_once('/') {
        Some(("image", sub)) => !matches!(
            sub,
            "svg+xml" | "bmp" | "x-ms-bmp" | "tiff" | "x-portable-pixmap" | "x-icon"
        ),
        Some(("video" | "audio", _)) => true,
        Some(("application", sub)) => matches!(
            sub,
            "zip"
                | "gzip"
                | "x-gzip"
                | "zstd"
                | "x-7z-compressed"
                | "x-rar-compressed"
                | "x-bzip2"
                | "x-xz"
                | "vnd.rar"
        ),
        Some(("font", sub)) => matches!(sub, "woff" | "woff2"),
        _ => false,
    };
    if compressed {
        Method::Store
    } else {
        Method::Deflate
    }
}

impl MethodChoice {
    /// Whether the entry may end up deflated (and need a deflate state).
    pub fn may_deflate(self) -> bool {
        self != MethodChoice::Fixed(Method::Store)
    }

    pub fn resolve(self, content_type: Option<&str>) -> Method {
        match self {
            MethodChoice::Fixed(m) => m,
            MethodChoice::ByContentType => choose_by_content_type(content_type),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_formats_are_stored() {
        assert_eq!(choose_by_name("a/B.JPG"), Some(Method::Store));
        assert_eq!(choose_by_name("clip.mp4"), Some(Method::Store));
        assert_eq!(choose_by_name("x.webp"), Some(Method::Store));
        assert_eq!(choose_by_name("notes.txt"), Some(Method::Deflate));
        assert_eq!(choose_by_name("image.bmp"), Some(Method::Deflate));
        assert_eq!(choose_by_name("README"), None);
        assert_eq!(choose_by_name(".profile"), None);
        assert_eq!(choose_by_content_type(Some("image/jpeg")), Method::Store);
        assert_eq!(
            choose_by_content_type(Some("Image/AVIF; q=1")),
            Method::Store
        );
        assert_eq!(
            choose_by_content_type(Some("image/svg+xml")),
            Method::Deflate
        );
        assert_eq!(choose_by_content_type(Some("text/plain")), Method::Deflate);
        assert_eq!(choose_by_content_type(None), Method::Deflate);
        assert_eq!(
            MethodChoice::ByContentType.resolve(Some("video/mp4")),
            Method::Store
        );
    }
}
