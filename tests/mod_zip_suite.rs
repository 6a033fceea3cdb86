//! nginx mod_zip's own test suite (`t/ziptest.pl`, its `t/nginx.conf` and
//! `t/nginx/html/`), translated case by case into sluice tests: the same
//! files, manifests and response headers on a loopback origin that serves
//! them as that nginx.conf does, and the same requests against sluice.
//!
//! sluice lays out stored entries byte for byte as mod_zip does (both
//! write the extended timestamp field), so the suite's numbers hold as
//! they are: a 303-byte archive, the first file's data after byte 51, the
//! second's after byte 127.
//!
//! Where sluice answers differently on purpose, the case says so, and
//! docs/zip.md lists the deviations:
//! - `X-Archive-Files` is not passed on to the client (a proxy in front
//!   that reads it would take the archive for a manifest);
//! - a failed entry is a 502 from sluice (mod_zip: 500): the origin failed.
#![allow(clippy::unwrap_used)]

mod common;
mod zip_origin;
mod zip_readers;

use std::process::Command;

use bytes::Bytes;
use common::{client, Sluice};
use zip_origin::{StaticFile, ZipOrigin};
use zip_readers::{check_all, python_list, python_read, stdout_of, temp_file};

const FILE1: &[u8] = b"This is the first file.\n";
const FILE2: &[u8] = b"This is the second file.\n";
const ZIP_LENGTH: usize = 303;
const FILE1_OFFSET: usize = 51;
const FILE2_OFFSET: usize = 127;
const LAST_MODIFIED: &str = "Wed, 15 Nov 1995 04:58:08 GMT";

/// t/nginx/html as the `listen 8082` server of t/nginx.conf serves it,
/// with the locations of the front server (`/local`, `/internal`,
/// `@not_directory`) mapped onto the origin, since sluice fetches every
/// entry from its origin.
async fn mod_zip_origin() -> ZipOrigin {
    let origin = ZipOrigin::start().await;
    let file = |body: Bytes| StaticFile {
        body,
        headers: vec![],
        needs_header: None,
        pass_headers_from_query: false,
    };
    let files: [(&str, &[u8]); 2] = [("file1.txt", FILE1), ("file2.txt", FILE2)];
    for (name, body) in files {
        let body = Bytes::from_static(body);
        for dir in ["", "/local", "/internal"] {
            origin.add_file(&format!("{dir}/{name}"), file(body.clone()));
        }
        for (dir, header) in [("cookie", "cookie"), ("x_auth_token", "x-auth-token")] {
            let mut f = file(body.clone());
            f.needs_header = Some(header);
            origin.add_file(&format!("/with_auth/{dir}/{name}"), f);
        }
    }
    origin.add_file("/file1 with spaces.txt", file(Bytes::from_static(FILE1)));
    origin.add_file(
        "/file1 with space + plus.txt",
        file(Bytes::from_static(FILE1)),
    );
    // `location = @not_directory { rewrite .* /file1.txt break; }`
    origin.add_file("/@not_directory", file(Bytes::from_static(FILE1)));
    origin.add_file("/@directory_not", file(Bytes::from_static(FILE2)));
    origin.add_file("/largefile.txt", file(Bytes::from(large_file())));

    let many: String = [
        "1a6349c5 24 /file1.txt file1.txt\n",
        "5d70c4d3 25 /file2.txt file2.txt\n",
    ]
    .concat()
        + &(3..=136)
            .map(|i| format!("1a6349c5 24 /file1.txt file{i}.txt\n"))
            .collect::<String>();
    let manifests: [(&str, String); 16] = [
        ("zip.txt", "1a6349c5 24 /file1.txt file1.txt\n5d70c4d3 25 /file2.txt file2.txt\n".into()),
        ("zip-missing-crc.txt", "- 24 /file1.txt file1.txt\n5d70c4d3 25 /file2.txt file2.txt\n".into()),
        ("zip-uppercase-crc.txt", "1A6349C5 24 /file1.txt file1.txt\n5D70C4d3 25 /file2.txt file2.txt\n".into()),
        ("zip-404.txt", "5d70c4d3 25 /file-does-not-exist.txt file2.txt\n1a6349c5 24 /file1.txt file1.txt\n".into()),
        ("zip-many-files.txt", many),
        ("zip-local-files.txt", "1a6349c5 24 /local/file1.txt file1.txt\n5d70c4d3 25 /local/file2.txt file2.txt\n".into()),
        ("zip-spaces.txt", "1a6349c5 24 /file1%20with%20spaces.txt file1.txt\n5d70c4d3 25 /file2.txt file2.txt\n".into()),
        (
            "zip-spaces-plus.txt",
            "1a6349c5 24 /file1%20with%20space%20%2B%20plus.txt file1.txt\n\
             1a6349c5 24 /file1%20with%20space%20+%20plus.txt file1a.txt\n\
             5d70c4d3 25 /file2.txt file2.txt\n"
                .into(),
        ),
        ("zip-internal-location.txt", "1a6349c5 24 /internal/file1.txt file1.txt\n".into()),
        (
            "zip-empty-dirs.txt",
            "1a6349c5 24 /file1.txt file1.txt\n0        0  @directory empty_dir1/\n\
             5d70c4d3 25 /file2.txt file2.txt\n0        0  @directory empty_dir2/\n"
                .into(),
        ),
        ("zip-only-empty-dirs.txt", "0        0  @directory empty_dir1/\n0        0  @directory empty_dir2/\n".into()),
        ("zip-not-empty-dirs.txt", "1a6349c5 24 @not_directory file1.txt\n5d70c4d3 25 @directory_not file2.txt\n".into()),
        (
            "zip-authorized-files-cookie.txt",
            "1a6349c5 24 /with_auth/cookie/file1.txt file1.txt\n5d70c4d3 25 /with_auth/cookie/file2.txt file2.txt\n".into(),
        ),
        (
            "zip-authorized-files-x.txt",
            "1a6349c5 24 /with_auth/x_auth_token/file1.txt file1.txt\n\
             5d70c4d3 25 /with_auth/x_auth_token/file2.txt file2.txt\n"
                .into(),
        ),
        (
            "zip-authorized-files-mixed.txt",
            "1a6349c5 24 /with_auth/cookie/file1.txt file1.txt\n\
             5d70c4d3 25 /with_auth/x_auth_token/file2.txt file2.txt\n"
                .into(),
        ),
        ("zip-large-file.txt", "a052e423 10000000 /largefile.txt largefile.txt\n".into()),
    ];
    for (name, text) in manifests {
        // `location /zip { add_header ... }`
        origin.add_file(
            &format!("/{name}"),
            StaticFile {
                body: Bytes::from(text),
                headers: vec![
                    ("x-archive-files", "zip"),
                    ("last-modified", LAST_MODIFIED),
                    ("etag", "3.14159"),
                ],
                needs_header: None,
                pass_headers_from_query: true,
            },
        );
    }
    origin
}

/// `largefile.txt` as ziptest.pl writes it: 100,000 lines of 99 `X`s.
fn large_file() -> Vec<u8> {
    let mut line = vec![b'X'; 99];
    line.push(b'\n');
    line.repeat(100_000)
}

struct Got {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

async fn get(sluice: &Sluice, path: &str, headers: &[(&str, &str)]) -> Got {
    let mut req = client().get(sluice.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
    Got {
        status,
        headers,
        body,
    }
}

/// What mod_zip's suite reads with Archive::Zip, read here with Python's
/// zipfile: name, CRC-32 (hex), general purpose flags, is it a directory.
fn members(zip: &[u8]) -> Vec<(String, String, u32, bool)> {
    let file = temp_file("mod-zip-suite", zip);
    let out = stdout_of(
        Command::new("python3")
            .arg("-c")
            .arg(
                "import sys, zipfile\n\
             for i in zipfile.ZipFile(sys.argv[1]).infolist():\n\
             \x20   print('%s\\t%08x\\t%d\\t%d' % (i.filename, i.CRC, i.flag_bits, i.is_dir()))",
            )
            .arg(&*file),
    );
    out.lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (
                f[0].to_string(),
                f[1].to_string(),
                f[2].parse().unwrap(),
                f[3] == "1",
            )
        })
        .collect()
}

/// ziptest.pl's `test_zip_archive`: file1.txt and file2.txt extract to the
/// originals (and every reader here agrees the archive is sound).
fn test_zip_archive(zip: &[u8], condition: &str) {
    let file = temp_file("mod-zip-suite", zip);
    check_all(&file);
    assert_eq!(
        python_read(&file, "file1.txt"),
        FILE1,
        "file1.txt {condition}"
    );
    assert_eq!(
        python_read(&file, "file2.txt"),
        FILE2,
        "file2.txt {condition}"
    );
}

fn crc_of(members: &[(String, String, u32, bool)], name: &str) -> String {
    members.iter().find(|m| m.0 == name).unwrap().1.clone()
}

fn sluice_for(origin: &ZipOrigin) -> Sluice {
    Sluice::start(&["--origin", &origin.url()])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn component_files_and_basic_archives() {
    let origin = mod_zip_origin().await;
    let sluice = sluice_for(&origin);

    // Download component files.
    let got = get(&sluice, "/file1.txt", &[]).await;
    assert_eq!((got.body.as_slice(), got.body.len()), (FILE1, 24));
    let got = get(&sluice, "/file1.txt", &[("range", "bytes=0-3")]).await;
    assert_eq!(got.body, b"This", "download file1.txt partial");
    let got = get(&sluice, "/file2.txt", &[]).await;
    assert_eq!((got.body.as_slice(), got.body.len()), (FILE2, 25));

    // Missing CRC: a length all the same (data descriptor), no ranges.
    let got = get(&sluice, "/zip-missing-crc.txt", &[]).await;
    assert_eq!(got.status, 200, "Returns OK with missing CRC");
    assert_eq!(
        got.header("content-length").unwrap(),
        got.body.len().to_string()
    );
    assert_eq!(
        got.header("accept-ranges"),
        None,
        "No Accept-Ranges when missing CRC"
    );
    test_zip_archive(&got.body, "when missing CRC");
    let m = members(&got.body);
    assert_eq!(m[0].2 & 8, 8, "Has data descriptor when missing CRC");
    assert_eq!(
        crc_of(&m, "file1.txt"),
        "1a6349c5",
        "Generated file1.txt CRC"
    );
    assert_eq!(
        crc_of(&m, "file2.txt"),
        "5d70c4d3",
        "Generated file2.txt CRC"
    );
    // ...and a Range is ignored there, as mod_zip ignores it.
    let got = get(&sluice, "/zip-missing-crc.txt", &[("range", "bytes=0-1")]).await;
    assert_eq!(got.status, 200);

    let got = get(&sluice, "/zip-uppercase-crc.txt", &[]).await;
    assert_eq!(got.status, 200, "Returns OK with uppercase CRC");
    test_zip_archive(&got.body, "with uppercase CRC");
    let m = members(&got.body);
    assert_eq!(crc_of(&m, "file1.txt"), "1a6349c5");
    assert_eq!(crc_of(&m, "file2.txt"), "5d70c4d3");

    // "Server error with bad file": mod_zip 500, sluice 502 (the origin
    // failed), before any byte of the archive.
    let got = get(&sluice, "/zip-404.txt", &[]).await;
    assert_eq!(got.status, 502, "Server error with bad file");
    assert!(String::from_utf8_lossy(&got.body).contains("file2.txt"));
    // Also when several ranges are asked and the first (bytes of the
    // refused entry's data) needs it: the refusal is the answer, not a
    // multipart 206 cut after its first part's head.
    let got = get(&sluice, "/zip-404.txt", &[("range", "bytes=60-70,0-1")]).await;
    assert_eq!(got.status, 502, "Server error with bad file, multipart");

    let got = get(&sluice, "/zip-many-files.txt", &[]).await;
    assert_eq!(got.status, 200, "Returns OK with many files");
    test_zip_archive(&got.body, "with many files");
    assert_eq!(
        members(&got.body).len(),
        136,
        "Correct number in many-file ZIP"
    );

    let got = get(&sluice, "/zip-local-files.txt", &[]).await;
    assert_eq!(got.status, 200, "Returns OK with local files");
    test_zip_archive(&got.body, "with local files");
    let m = members(&got.body);
    assert_eq!(m.len(), 2);
    assert_eq!(crc_of(&m, "file1.txt"), "1a6349c5");
    assert_eq!(crc_of(&m, "file2.txt"), "5d70c4d3");

    let got = get(&sluice, "/zip-spaces.txt", &[]).await;
    assert_eq!(got.status, 200, "Returns OK with spaces in URLs");
    test_zip_archive(&got.body, "with spaces in URLs");
    assert_eq!(members(&got.body).len(), 2);

    let got = get(&sluice, "/zip-spaces-plus.txt", &[]).await;
    assert_eq!(got.status, 200, "Returns OK with spaces and plus in URLs");
    test_zip_archive(&got.body, "with spaces and plus in the URLs");
    assert_eq!(members(&got.body).len(), 3);

    let got = get(&sluice, "/zip-internal-location.txt", &[]).await;
    assert_eq!(got.status, 200, "Returns OK with internal locations");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_directories_and_pass_headers() {
    let origin = mod_zip_origin().await;
    let sluice = sluice_for(&origin);

    let got = get(&sluice, "/zip-empty-dirs.txt", &[]).await;
    assert_eq!(got.status, 200);
    test_zip_archive(&got.body, "with empty directories");
    let m = members(&got.body);
    let dir = |name: &str| m.iter().find(|x| x.0 == name).unwrap().3;
    assert!(!dir("file1.txt") && !dir("file2.txt"));
    assert!(dir("empty_dir1/") && dir("empty_dir2/"));

    let got = get(&sluice, "/zip-only-empty-dirs.txt", &[]).await;
    assert_eq!(got.status, 200, "Returns OK with only empty directories");
    let m = members(&got.body);
    assert_eq!(m.iter().filter(|x| x.3).count(), 2);
    check_all(&temp_file("only-dirs", &got.body));

    let got = get(&sluice, "/zip-not-empty-dirs.txt", &[]).await;
    assert_eq!(
        got.status, 200,
        "locations starting with @ but not @directory"
    );
    test_zip_archive(&got.body, "with not empty directories");

    // Pass headers in sub-requests.
    let cookie = [("cookie", "session=verified")];
    let token = [("x-auth-token", "verified")];
    let both = [("cookie", "session=verified"), ("x-auth-token", "verified")];
    type Headers<'a> = &'a [(&'a str, &'a str)];
    let cases: [(&str, Headers, u16); 6] = [
        ("/zip-authorized-files-cookie.txt", &cookie, 502),
        (
            "/zip-authorized-files-cookie.txt?pass_headers=Cookie",
            &cookie,
            200,
        ),
        ("/zip-authorized-files-x.txt", &token, 502),
        (
            "/zip-authorized-files-x.txt?pass_headers=X-Auth-Token",
            &token,
            200,
        ),
        ("/zip-authorized-files-mixed.txt", &both, 502),
        (
            "/zip-authorized-files-mixed.txt?pass_headers=Cookie:X-Auth-Token",
            &both,
            200,
        ),
    ];
    for (path, headers, status) in cases {
        let got = get(&sluice, path, headers).await;
        assert_eq!(got.status, status, "{path}");
        if status == 200 {
            test_zip_archive(&got.body, path);
        }
    }

    // A large file.
    let got = get(&sluice, "/zip-large-file.txt", &[]).await;
    assert_eq!(got.status, 200, "Returns OK with large file");
    assert_eq!(crc32fast::hash(&large_file()), 0xa052_e423);
    let file = temp_file("large", &got.body);
    assert_eq!(python_read(&file, "largefile.txt").len(), 10_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_ranges_and_if_range() {
    let origin = mod_zip_origin().await;
    let sluice = sluice_for(&origin);

    let got = get(&sluice, "/zip.txt", &[]).await;
    // Deviation: mod_zip passes X-Archive-Files on; sluice does not.
    assert_eq!(got.header("x-archive-files"), None);
    assert_eq!(got.header("content-type"), Some("application/zip"));
    assert_eq!(got.header("cache-control"), Some("max-age=0"));
    assert_eq!(got.header("accept-ranges"), Some("bytes"));
    assert_eq!(
        got.header("content-length"),
        Some(ZIP_LENGTH.to_string().as_str())
    );
    assert_eq!(got.header("last-modified"), Some(LAST_MODIFIED));
    assert_eq!(got.body.len(), ZIP_LENGTH);
    test_zip_archive(&got.body, "with CRC");
    assert_eq!(
        members(&got.body)[0].2 & 8,
        0,
        "No data descriptor when CRC supplied"
    );
    let zip = got.body;

    // Byte ranges.
    let range = |spec: String| {
        let sluice = &sluice;
        async move { get(sluice, "/zip.txt", &[("range", &spec)]).await }
    };
    assert_eq!(range("bytes=10000-10001".into()).await.status, 416);
    let cases: [(usize, usize, &[u8]); 5] = [
        (0, 1, b"PK"),
        (30, 38, b"file1.txt"),
        (FILE2_OFFSET + 1, 152, FILE2),
        (FILE2_OFFSET + 1, FILE2_OFFSET + 4, b"This"),
        (FILE2_OFFSET + 3, FILE2_OFFSET + 4, b"is"),
    ];
    for (a, b, want) in cases {
        let got = range(format!("bytes={a}-{b}")).await;
        assert_eq!(got.status, 206, "{a}-{b}");
        assert_eq!(got.body, want, "{a}-{b}");
        assert_eq!(
            got.header("content-range"),
            Some(format!("bytes {a}-{b}/{ZIP_LENGTH}").as_str())
        );
    }
    // All of the first file and part of the second.
    let got = range(format!("bytes=0-{}", FILE2_OFFSET + 5)).await;
    assert_eq!(got.status, 206);
    assert_eq!(got.body.len(), FILE2_OFFSET + 1 + 5);
    assert_eq!(&got.body[FILE2_OFFSET + 1..FILE2_OFFSET + 5], b"This");
    // Part of the first and of the second file, also from /local.
    for path in ["/zip.txt", "/zip-local-files.txt"] {
        let spec = format!("bytes={}-{}", FILE1_OFFSET + 9, FILE2_OFFSET + 4);
        let got = get(&sluice, path, &[("range", &spec)]).await;
        assert_eq!(got.status, 206, "{path}");
        assert_eq!(got.body.len(), (FILE2_OFFSET + 4) - (FILE1_OFFSET + 9) + 1);
        assert_eq!(&got.body[..14], b"the first file");
        assert_eq!(&got.body[68..72], b"This");
    }
    // Prefix and suffix.
    for spec in [
        format!("bytes={}-", FILE2_OFFSET + 1),
        format!("bytes=-{}", ZIP_LENGTH - (FILE2_OFFSET + 1)),
    ] {
        let got = range(spec.clone()).await;
        assert_eq!(got.status, 206, "{spec}");
        assert_eq!(got.body.len(), ZIP_LENGTH - (FILE2_OFFSET + 1), "{spec}");
        assert_eq!(&got.body[..25], FILE2, "{spec}");
        assert_eq!(got.body, &zip[FILE2_OFFSET + 1..]);
    }

    // Multiple byte ranges, in either order.
    for spec in [
        format!("bytes=0-1,{}-{}", FILE2_OFFSET + 1, FILE2_OFFSET + 4),
        format!("bytes={}-{},0-1", FILE2_OFFSET + 1, FILE2_OFFSET + 4),
    ] {
        let got = range(spec.clone()).await;
        assert_eq!(got.status, 206, "{spec}");
        let ct = got.header("content-type").unwrap().to_string();
        let boundary = ct
            .strip_prefix("multipart/byteranges; boundary=")
            .unwrap_or_else(|| panic!("{ct}"));
        assert!(boundary
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_'));
        assert_eq!(
            got.header("content-length").unwrap(),
            got.body.len().to_string()
        );
        let body = String::from_utf8_lossy(&got.body).into_owned();
        let part = |range: &str, data: &str| {
            format!("--{boundary}\r\nContent-Type: application/zip\r\nContent-Range: bytes {range}/{ZIP_LENGTH}\r\n\r\n{data}\r\n")
        };
        let (first, second) = (part("0-1", "PK"), part("128-131", "This"));
        assert!(body.contains(&first), "{body:?}");
        assert!(body.contains(&second), "{body:?}");
        // In the order asked, and closed.
        let pk_first = spec.starts_with("bytes=0-1");
        assert_eq!(body.find(&first) < body.find(&second), pk_first);
        assert!(body.ends_with(&format!("--{boundary}--\r\n")));
    }

    // If-Range: the manifest's Last-Modified and ETag (mod_zip compares
    // the upstream's), or sluice's own ETag.
    let archive_etag = get(&sluice, "/zip.txt", &[])
        .await
        .header("etag")
        .unwrap()
        .to_string();
    for (validator, status) in [
        ("Wed, 15 Nov 1995 04:58:07 GMT", 200),
        (LAST_MODIFIED, 206),
        ("2.71828", 200),
        ("3.14159", 206),
        (archive_etag.as_str(), 206),
    ] {
        let got = get(
            &sluice,
            "/zip.txt",
            &[("if-range", validator), ("range", "bytes=0-1")],
        )
        .await;
        assert_eq!(got.status, status, "If-Range: {validator}");
    }
}

/// Each entry as Python's zipfile sees it: the header name's raw bytes,
/// whether the UTF-8 flag is set, and the Unicode Path field (0x7075), if
/// any, as (CRC it carries == CRC-32 of the header name, UTF-8 name).
/// (header name bytes, UTF-8 flag, Unicode Path field as (CRC ok, name)).
type RawName = (Vec<u8>, bool, Option<(bool, String)>);

fn raw_names(zip: &[u8]) -> Vec<RawName> {
    let file = temp_file("mod-zip-charset", zip);
    let out = stdout_of(
        Command::new("python3")
            .arg("-c")
            .arg(
                "import sys, zipfile, struct, zlib\n\
             for i in zipfile.ZipFile(sys.argv[1]).infolist():\n\
             \x20   utf8 = bool(i.flag_bits & 0x800)\n\
             \x20   raw = i.orig_filename.encode('utf-8' if utf8 else 'cp437')\n\
             \x20   up, x = '-', i.extra\n\
             \x20   while len(x) >= 4:\n\
             \x20       tag, n = struct.unpack('<HH', x[:4]); body = x[4:4 + n]; x = x[4 + n:]\n\
             \x20       if tag == 0x7075 and body[0] == 1:\n\
             \x20           ok = struct.unpack('<I', body[1:5])[0] == zlib.crc32(raw)\n\
             \x20           up = '%d:%s' % (ok, body[5:].hex())\n\
             \x20   print(raw.hex(), int(utf8), up)",
            )
            .arg(&*file),
    );
    let hex = |s: &str| {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect::<Vec<u8>>()
    };
    out.lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let up = f[2]
                .split_once(':')
                .map(|(ok, name)| (ok == "1", String::from_utf8(hex(name)).unwrap()));
            (hex(f[0]), f[1] == "1", up)
        })
        .collect()
}

/// bsdtar's listing, in a UTF-8 locale: it reads the Unicode Path field.
fn bsdtar_names(zip: &[u8]) -> Vec<String> {
    let file = temp_file("mod-zip-charset", zip);
    let out = stdout_of(
        Command::new("bsdtar")
            .env("LC_ALL", "C.UTF-8")
            .arg("-tf")
            .arg(&*file),
    );
    out.lines().map(str::to_string).collect()
}

/// mod_zip's README: `X-Archive-Charset` (an iconv charset, or `native`)
/// and `X-Archive-Name-Sep`. Its suite has no case for them; these are
/// the README's three uses, checked against Python's zipfile and bsdtar.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_in_a_legacy_charset_as_the_mod_zip_readme_gives_them() {
    let origin = ZipOrigin::start().await;
    origin.add_file(
        "/file1.txt",
        StaticFile {
            body: Bytes::from_static(FILE1),
            headers: vec![],
            needs_header: None,
            pass_headers_from_query: false,
        },
    );
    let manifest = |body: Vec<u8>, headers: Vec<(&'static str, &'static str)>| {
        let mut headers = headers;
        headers.push(("x-archive-files", "zip"));
        StaticFile {
            body: Bytes::from(body),
            headers,
            needs_header: None,
            pass_headers_from_query: false,
        }
    };
    // "Привет.txt" in cp866.
    let cp866: &[u8] = b"\x8f\xe0\xa8\xa2\xa5\xe2.txt";
    let line = |name: &[u8]| [b"1a6349c5 24 /file1.txt ".as_slice(), name, b"\n"].concat();
    origin.add_file(
        "/cp866.txt",
        manifest(
            line("Привет.txt".as_bytes()),
            vec![("x-archive-charset", "cp866")],
        ),
    );
    origin.add_file(
        "/native.txt",
        manifest(line(cp866), vec![("x-archive-charset", "native;")]),
    );
    let separated = [cp866, b"|", "Привет.txt".as_bytes()].concat();
    origin.add_file(
        "/sep.txt",
        manifest(line(&separated), vec![("x-archive-name-sep", "|;")]),
    );
    origin.add_file("/utf8.txt", manifest(line("Привет.txt".as_bytes()), vec![]));
    let sluice = sluice_for(&origin);

    let unicode = Some((true, "Привет.txt".to_string()));
    for (path, want) in [
        // Converted, the UTF-8 flag clear, the UTF-8 name in a Unicode Path field.
        ("/cp866.txt", (cp866.to_vec(), false, unicode.clone())),
        // As given, the flag clear, no Unicode Path.
        ("/native.txt", (cp866.to_vec(), false, None)),
        // The native part in the header, the UTF-8 part in a Unicode Path field.
        ("/sep.txt", (cp866.to_vec(), false, unicode.clone())),
        // No header: UTF-8 with the flag.
        ("/utf8.txt", ("Привет.txt".as_bytes().to_vec(), true, None)),
    ] {
        let got = get(&sluice, path, &[]).await;
        assert_eq!(got.status, 200, "{path}");
        assert_eq!(raw_names(&got.body), vec![want.clone()], "{path}");
        check_all(&temp_file("mod-zip-charset", &got.body));
        let file = temp_file("mod-zip-charset", &got.body);
        let listed = python_list(&file);
        assert_eq!(listed.len(), 1, "{path}");
        assert_eq!(python_read(&file, &listed[0].name), FILE1, "{path}");
        if want.2.is_some() || want.1 {
            assert_eq!(bsdtar_names(&got.body), vec!["Привет.txt"], "{path}");
        }
    }
}
