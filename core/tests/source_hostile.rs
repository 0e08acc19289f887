//! The registry client against a hostile server of our own on 127.0.0.1:
//! redirects to another origin, endless 401s, oversized and endless
//! manifests, stalls, wrong digests, truncated bodies, flaky 5xx. Each case
//! must end with a clear error in bounded time, and credentials must never
//! reach another origin. Also: endless, stalled-midway and wrong blobs, and
//! oversized or endless configs (issue 6). A blob that trickles is cut off
//! by the low-speed limit, resumed, and in the end refused (issue 9).
#![cfg(feature = "store")]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use syscontainer::paths::Root;
use syscontainer::source::registry::RegistrySource;
use syscontainer::source::{
    sha256_digest, Descriptor, DigestReader, ImageSource, LowSpeed, SourceError, SourceOptions,
};

#[derive(Debug, Clone)]
struct Req {
    path: String,
    auth: Option<String>,
    range: Option<String>,
}

enum Reply {
    Raw(Vec<u8>),
    /// Send this head, then zeros until the client hangs up.
    Endless(String),
    /// Say nothing for this long, then hang up.
    Stall(Duration),
    /// Send these bytes, then say nothing for this long, then hang up.
    PartialStall(Vec<u8>, Duration),
    /// Send this head, then the body `chunk` bytes at a time, one chunk
    /// every `every`.
    Drip {
        head: String,
        body: Vec<u8>,
        chunk: usize,
        every: Duration,
    },
}

fn reply(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        out += &format!("{k}: {v}\r\n");
    }
    out += "\r\n";
    let mut raw = out.into_bytes();
    raw.extend_from_slice(body);
    Reply::Raw(raw)
}

type Handler = dyn Fn(&Req, usize) -> Reply + Send + Sync;

struct Server {
    port: u16,
    log: Arc<Mutex<Vec<Req>>>,
    stop: Arc<AtomicBool>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

impl Server {
    /// `handler(request, n)` answers the n-th request (from 0).
    fn start(handler: impl Fn(&Req, usize) -> Reply + Send + Sync + 'static) -> Server {
        let l = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
        let port = l.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let (log2, stop2) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in l.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (h, log) = (handler.clone(), log2.clone());
                std::thread::spawn(move || {
                    let _ = serve_one(conn, &*h, &log);
                });
            }
        });
        Server { port, log, stop }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn requests(&self) -> Vec<Req> {
        self.log.lock().unwrap().clone()
    }
}

fn serve_one(conn: TcpStream, h: &Handler, log: &Mutex<Vec<Req>>) -> io::Result<()> {
    let mut r = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let (mut auth, mut range) = (None, None);
    loop {
        let mut l = String::new();
        if r.read_line(&mut l)? == 0 || l.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("authorization") {
                auth = Some(v.trim().to_string());
            } else if k.eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            }
        }
    }
    let req = Req { path, auth, range };
    let n = {
        let mut g = log.lock().unwrap();
        g.push(req.clone());
        g.len() - 1
    };
    let mut w = conn;
    match h(&req, n) {
        Reply::Raw(b) => w.write_all(&b)?,
        Reply::Endless(head) => {
            w.write_all(head.as_bytes())?;
            let zeros = vec![0u8; 64 << 10];
            loop {
                w.write_all(&zeros)?;
            }
        }
        Reply::Stall(d) => std::thread::sleep(d),
        Reply::PartialStall(b, d) => {
            w.write_all(&b)?;
            w.flush()?;
            std::thread::sleep(d);
        }
        Reply::Drip {
            head,
            body,
            chunk,
            every,
        } => {
            w.write_all(head.as_bytes())?;
            for c in body.chunks(chunk) {
                w.flush()?;
                std::thread::sleep(every);
                w.write_all(c)?;
            }
        }
    }
    Ok(())
}

fn source(spec: &str, creds: Option<&str>) -> RegistrySource {
    let dir = std::env::temp_dir();
    let mut o = SourceOptions::new(Root::new(&dir));
    o.quiet = true;
    o.creds = creds.map(String::from);
    o.authfile = Some(dir.join("syscontainer-no-such-auth.json"));
    let mut s = RegistrySource::new(spec, &o).unwrap();
    s.client_mut().set_retry_delay(Duration::from_millis(10));
    s.client_mut()
        .set_timeouts(Duration::from_secs(2), Duration::from_secs(1));
    s
}

const MANIFEST_PATH: &str = "/v2/img/manifests/latest";

fn ok_v2(req: &Req) -> Option<Reply> {
    (req.path == "/v2/").then(|| reply("200 OK", &[], b"{}"))
}

#[test]
fn credentials_never_follow_a_redirect_to_another_origin() {
    let data = b"layer bytes".to_vec();
    let d = Descriptor {
        media_type: "application/vnd.oci.image.layer.v1.tar".into(),
        digest: sha256_digest(&data),
        size: data.len() as u64,
    };
    let data2 = data.clone();
    let cdn = Server::start(move |_, _| reply("200 OK", &[], &data2));
    let cdn_url = format!("http://{}/blob", cdn.host());
    let reg = Server::start(move |req, _| {
        if req.auth.is_none() {
            return reply(
                "401 Unauthorized",
                &[("WWW-Authenticate", r#"Basic realm="r""#)],
                b"",
            );
        }
        if req.path.starts_with("/v2/img/blobs/") {
            return reply("307 Temporary Redirect", &[("Location", &cdn_url)], b"");
        }
        reply("200 OK", &[], b"{}")
    });
    let mut s = source(&format!("http:{}/img", reg.host()), Some("user:topsecret"));
    let mut r = DigestReader::new(s.open_blob(&d).unwrap(), &d.digest, Some(d.size));
    let mut got = Vec::new();
    r.read_to_end(&mut got).unwrap();
    assert_eq!(got, data);
    let blob_req = reg
        .requests()
        .into_iter()
        .find(|r| r.path.contains("/blobs/"))
        .unwrap();
    assert!(
        blob_req.auth.is_some(),
        "the registry itself gets credentials"
    );
    let cdn_reqs = cdn.requests();
    assert_eq!(cdn_reqs.len(), 1);
    assert_eq!(
        cdn_reqs[0].auth,
        None,
        "credentials leaked to {}",
        cdn.host()
    );
}

/// The happy bearer path: one token, fetched with the user's credentials,
/// then reused for every request until it expires.
#[test]
fn bearer_token_is_fetched_once_and_reused() {
    let config = br#"{"rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec();
    let cd = sha256_digest(&config);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cd}","size":{}}},"layers":[]}}"#,
        config.len()
    );
    let tokens = Server::start(|req, _| {
        if req.auth.as_deref() == Some("Basic dXNlcjpwdw==") {
            reply("200 OK", &[], br#"{"access_token":"tok","expires_in":300}"#)
        } else {
            reply("401 Unauthorized", &[], b"")
        }
    });
    let challenge = format!(
        r#"Bearer realm="http://{}/token",service="reg""#,
        tokens.host()
    );
    let reg = Server::start(move |req, _| {
        if req.auth.as_deref() != Some("Bearer tok") {
            return reply("401 Unauthorized", &[("WWW-Authenticate", &challenge)], b"");
        }
        if req.path == MANIFEST_PATH {
            return reply("200 OK", &[], manifest.as_bytes());
        }
        if req.path.contains("/blobs/") {
            return reply("200 OK", &[], &config);
        }
        reply("200 OK", &[], b"{}")
    });
    let mut s = source(&format!("http:{}/img", reg.host()), Some("user:pw"));
    let r = s.resolve().unwrap();
    assert_eq!(r.config.digest, cd);
    assert_eq!(tokens.requests().len(), 1, "{:?}", tokens.requests());
    assert!(tokens.requests()[0].path.contains("service=reg"));
    // ping (anonymous, 401), manifest, config: all but the ping carry the token.
    let reqs = reg.requests();
    assert_eq!(reqs.len(), 3, "{reqs:?}");
    assert!(reqs[1..]
        .iter()
        .all(|r| r.auth.as_deref() == Some("Bearer tok")));

    // Wrong password at the token server: a clear error.
    let mut s = source(&format!("http:{}/img", reg.host()), Some("user:nope"));
    let e = s.resolve().err().unwrap();
    assert!(e.to_string().contains("rejected the credentials"), "{e}");
    assert!(!e.to_string().contains("nope"), "{e}");
}

#[test]
fn endless_401_ends_quickly() {
    let reg = Server::start(|_, _| {
        reply(
            "401 Unauthorized",
            &[("WWW-Authenticate", r#"Basic realm="r""#)],
            b"",
        )
    });
    let mut s = source(&format!("http:{}/img", reg.host()), Some("user:pw"));
    let e = s.resolve().err().unwrap();
    assert!(matches!(e, SourceError::Unauthorized { .. }), "{e}");
    assert!(
        reg.requests().len() <= 4,
        "{} requests",
        reg.requests().len()
    );

    // Bearer: a token server that hands out tokens the registry never takes.
    let tokens = Server::start(|_, _| reply("200 OK", &[], br#"{"token":"t","expires_in":300}"#));
    let challenge = format!(
        r#"Bearer realm="http://{}/token",service="s""#,
        tokens.host()
    );
    let reg = Server::start(move |_, _| {
        reply("401 Unauthorized", &[("WWW-Authenticate", &challenge)], b"")
    });
    let mut s = source(&format!("http:{}/img", reg.host()), None);
    let t = Instant::now();
    let e = s.resolve().err().unwrap();
    assert!(matches!(e, SourceError::Unauthorized { .. }), "{e}");
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(
        reg.requests().len() <= 4,
        "{} requests",
        reg.requests().len()
    );
    assert!(
        tokens.requests().len() <= 3,
        "{} token requests",
        tokens.requests().len()
    );
    assert!(
        tokens.requests()[0]
            .path
            .contains("scope=repository%3Aimg%3Apull"),
        "{:?}",
        tokens.requests()
    );
}

#[test]
fn oversized_and_endless_manifests_are_cut_off() {
    let reg = Server::start(|req, _| {
        ok_v2(req).unwrap_or_else(|| {
            Reply::Endless(format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: {}\r\n\r\n",
                5 << 20
            ))
        })
    });
    let e = source(&format!("http:{}/img", reg.host()), None)
        .resolve()
        .err()
        .unwrap();
    assert!(matches!(e, SourceError::TooLarge { .. }), "{e}");

    let reg = Server::start(|req, _| {
        ok_v2(req).unwrap_or_else(|| {
            Reply::Endless("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".into())
        })
    });
    let t = Instant::now();
    let e = source(&format!("http:{}/img", reg.host()), None)
        .resolve()
        .err()
        .unwrap();
    assert!(matches!(e, SourceError::TooLarge { .. }), "{e}");
    assert!(e.to_string().contains("manifest of"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_stalled_response_times_out() {
    let reg = Server::start(|req, _| ok_v2(req).unwrap_or(Reply::Stall(Duration::from_secs(20))));
    let t = Instant::now();
    let e = source(&format!("http:{}/img", reg.host()), None)
        .resolve()
        .err()
        .unwrap();
    assert!(matches!(e, SourceError::Http { .. }), "{e}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(reg.requests().len(), 2, "a timeout is not retried");
}

#[test]
fn wrong_digest_header_and_truncated_blob() {
    let reg = Server::start(|req, _| {
        ok_v2(req).unwrap_or_else(|| {
            if req.path == MANIFEST_PATH {
                let d = format!("sha256:{}", "0".repeat(64));
                reply(
                    "200 OK",
                    &[("Docker-Content-Digest", &d)],
                    br#"{"schemaVersion":2}"#,
                )
            } else {
                let mut raw = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n".to_vec();
                raw.extend_from_slice(&[1u8; 50]);
                Reply::Raw(raw)
            }
        })
    });
    let mut s = source(&format!("http:{}/img", reg.host()), None);
    let e = s.resolve().err().unwrap();
    assert!(matches!(e, SourceError::DigestMismatch { .. }), "{e}");
    assert!(e.to_string().contains(&"0".repeat(64)), "{e}");

    let d = Descriptor {
        media_type: "application/vnd.oci.image.layer.v1.tar".into(),
        digest: sha256_digest(&[1u8; 100]),
        size: 100,
    };
    let mut r = DigestReader::new(s.open_blob(&d).unwrap(), &d.digest, Some(d.size));
    assert!(io::copy(&mut r, &mut io::sink()).is_err());
}

#[test]
fn transient_5xx_is_retried_a_bounded_number_of_times() {
    let good = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":3},"layers":[]}"#;
    // Two failures, then the manifest (whose config then 404s).
    let reg = Server::start(move |req, _| {
        ok_v2(req).unwrap_or_else(|| {
            if req.path == MANIFEST_PATH {
                static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
                if N.fetch_add(1, Ordering::SeqCst) < 2 {
                    return reply("503 Service Unavailable", &[], b"busy");
                }
                return reply("200 OK", &[], good);
            }
            reply(
                "404 Not Found",
                &[],
                br#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}"#,
            )
        })
    });
    let e = source(&format!("http:{}/img", reg.host()), None)
        .resolve()
        .err()
        .unwrap();
    assert!(matches!(e, SourceError::NotFound { .. }), "{e}");
    assert!(e.to_string().contains("BLOB_UNKNOWN"), "{e}");
    let manifest_tries = reg
        .requests()
        .iter()
        .filter(|r| r.path == MANIFEST_PATH)
        .count();
    assert_eq!(manifest_tries, 3);

    // Always failing: 1 + MAX_RETRIES attempts, then the error.
    let reg = Server::start(|req, _| {
        ok_v2(req).unwrap_or_else(|| reply("503 Service Unavailable", &[], b""))
    });
    let e = source(&format!("http:{}/img", reg.host()), None)
        .resolve()
        .err()
        .unwrap();
    assert!(matches!(e, SourceError::Status { status: 503, .. }), "{e}");
    assert_eq!(
        reg.requests().len(),
        1 + 1 + syscontainer::source::registry::MAX_RETRIES as usize
    );
}

#[test]
fn redirect_loops_are_bounded() {
    let reg = Server::start(|req, _| {
        ok_v2(req).unwrap_or_else(|| reply("302 Found", &[("Location", MANIFEST_PATH)], b""))
    });
    let e = source(&format!("http:{}/img", reg.host()), None)
        .resolve()
        .err()
        .unwrap();
    assert!(e.to_string().contains("too many redirects"), "{e}");
    assert!(reg.requests().len() <= 2 + syscontainer::source::registry::MAX_REDIRECTS as usize);
}

fn layer_desc(data: &[u8]) -> Descriptor {
    Descriptor {
        media_type: "application/vnd.oci.image.layer.v1.tar".into(),
        digest: sha256_digest(data),
        size: data.len() as u64,
    }
}

/// A blob body that never ends (no Content-Length) is cut off one byte past
/// the descriptor's size; one with the right length and the wrong bytes is a
/// digest mismatch naming the digest.
#[test]
fn endless_and_wrong_blobs_fail_at_the_declared_size() {
    let reg = Server::start(|req, _| {
        ok_v2(req).unwrap_or_else(|| {
            if req.path.contains("endless") || req.path.contains(&sha256_digest(&[7u8; 1000])) {
                Reply::Endless("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".into())
            } else {
                reply("200 OK", &[], &[9u8; 1000])
            }
        })
    });
    let mut s = source(&format!("http:{}/img", reg.host()), None);
    let d = layer_desc(&[7u8; 1000]);
    let t = Instant::now();
    let mut r = DigestReader::new(s.open_blob(&d).unwrap(), &d.digest, Some(d.size));
    let mut got = Vec::new();
    let e = r.read_to_end(&mut got).unwrap_err();
    assert!(got.len() <= 1001, "read {} bytes", got.len());
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(e.to_string().contains("1000"), "{e}");
    drop(r);

    let d = layer_desc(&[8u8; 1000]); // served as 1000 bytes of 9s
    let mut r = DigestReader::new(s.open_blob(&d).unwrap(), &d.digest, Some(d.size));
    let e = io::copy(&mut r, &mut io::sink()).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
    let hex = d.digest.strip_prefix("sha256:").unwrap();
    assert!(e.to_string().contains(hex), "names the digest: {e}");
}

/// A config whose descriptor is over the cap is refused without fetching
/// it; a config served longer than its descriptor says is cut off.
#[test]
fn oversized_configs_are_refused() {
    let big = syscontainer::source::MAX_CONFIG_SIZE + 1;
    let manifest = |size: u64, digest: &str| {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{digest}","size":{size}}},"layers":[]}}"#
        )
    };
    let fake = sha256_digest(b"whatever");
    let m1 = manifest(big, &fake);
    let reg = Server::start(move |req, _| {
        ok_v2(req).unwrap_or_else(|| {
            if req.path == MANIFEST_PATH {
                reply("200 OK", &[], m1.as_bytes())
            } else {
                Reply::Endless("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".into())
            }
        })
    });
    let e = source(&format!("http:{}/img", reg.host()), None)
        .resolve()
        .err()
        .unwrap();
    assert!(matches!(e, SourceError::TooLarge { .. }), "{e}");
    assert!(
        !reg.requests().iter().any(|r| r.path.contains("/blobs/")),
        "fetched a config it had to refuse: {:?}",
        reg.requests()
    );

    // Declared small, served endless.
    let m2 = manifest(100, &fake);
    let reg = Server::start(move |req, _| {
        ok_v2(req).unwrap_or_else(|| {
            if req.path == MANIFEST_PATH {
                reply("200 OK", &[], m2.as_bytes())
            } else {
                Reply::Endless("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".into())
            }
        })
    });
    let t = Instant::now();
    let e = source(&format!("http:{}/img", reg.host()), None)
        .resolve()
        .err()
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // Read up to the cap (4 MiB), not forever.
    assert!(matches!(e, SourceError::TooLarge { .. }), "{e}");
}

/// A body that starts, then stalls: the read timeout ends it, and a stall is
/// not retried forever.
#[test]
fn a_body_that_stalls_midway_times_out() {
    let reg = Server::start(|req, _| {
        ok_v2(req).unwrap_or_else(|| {
            let mut raw = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".to_vec();
            raw.extend_from_slice(&[7u8; 100]);
            Reply::PartialStall(raw, Duration::from_secs(20))
        })
    });
    let mut s = source(&format!("http:{}/img", reg.host()), None);
    let d = layer_desc(&[7u8; 1000]);
    let t = Instant::now();
    let mut r = DigestReader::new(s.open_blob(&d).unwrap(), &d.digest, Some(d.size));
    let e = io::copy(&mut r, &mut io::sink()).unwrap_err();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "{:?}: {e}",
        t.elapsed()
    );
}

// ------------------------------------------------ the low-speed limit (issue 9)

/// A one-layer image served by our own server: manifest, config, and a
/// layer blob answered by `layer_reply(request, layer, n-th blob request)`.
struct TrickleImage {
    layer: Vec<u8>,
    reg: Server,
}

fn layer_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let data: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1);
    b.append_data(&mut h, "data", &data[..]).unwrap();
    b.into_inner().unwrap()
}

impl TrickleImage {
    fn start(
        layer_reply: impl Fn(&Req, &[u8], usize) -> Reply + Send + Sync + 'static,
    ) -> TrickleImage {
        let layer = layer_tar();
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
            sha256_digest(&layer)
        )
        .into_bytes();
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}]}}"#,
            sha256_digest(&config),
            config.len(),
            sha256_digest(&layer),
            layer.len()
        );
        let (l2, cd, ld) = (layer.clone(), sha256_digest(&config), sha256_digest(&layer));
        let blob_requests = std::sync::atomic::AtomicUsize::new(0);
        let reg = Server::start(move |req, _| {
            ok_v2(req).unwrap_or_else(|| {
                if req.path == MANIFEST_PATH {
                    reply(
                        "200 OK",
                        &[("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
                        manifest.as_bytes(),
                    )
                } else if req.path.ends_with(&cd) {
                    reply("200 OK", &[], &config)
                } else if req.path.ends_with(&ld) {
                    layer_reply(req, &l2, blob_requests.fetch_add(1, Ordering::SeqCst))
                } else {
                    reply("404 Not Found", &[], b"{}")
                }
            })
        });
        TrickleImage { layer, reg }
    }

    fn digest(&self) -> String {
        sha256_digest(&self.layer)
    }

    fn blob_requests(&self) -> Vec<Req> {
        let d = self.digest();
        self.reg
            .requests()
            .into_iter()
            .filter(|r| r.path.ends_with(&d))
            .collect()
    }
}

/// The layer, `chunk` bytes every `every`, from the requested range on
/// (206) or whole (200) when `honour_range` is false.
fn drip(req: &Req, layer: &[u8], chunk: usize, every: Duration, honour_range: bool) -> Reply {
    let from = req
        .range
        .as_deref()
        .filter(|_| honour_range)
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok());
    let (status, body, extra) = match from {
        Some(n) => (
            "206 Partial Content",
            &layer[n..],
            format!(
                "Content-Range: bytes {n}-{}/{}\r\n",
                layer.len() - 1,
                layer.len()
            ),
        ),
        None => ("200 OK", layer, String::new()),
    };
    Reply::Drip {
        head: format!(
            "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n{extra}\r\n",
            body.len()
        ),
        body: body.to_vec(),
        chunk,
        every,
    }
}

fn store() -> (tempfile::TempDir, syscontainer::store::Store) {
    let tmp = tempfile::tempdir().unwrap();
    let s = syscontainer::store::Store::open_with(
        &Root::new(tmp.path()),
        &syscontainer::store::Location::default(),
    )
    .unwrap();
    (tmp, s)
}

fn ostree(repo: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("ostree")
        .arg(format!("--repo={}", repo.display()))
        .args(args)
        .output()
        .expect("the ostree CLI is installed");
    assert!(
        out.status.success(),
        "ostree {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn trickle_source(img: &TrickleImage, limit: u64, secs: u64) -> RegistrySource {
    let mut s = source(&format!("http:{}/img", img.reg.host()), None);
    // The read timeout never fires on a drip; the low-speed limit must.
    s.client_mut()
        .set_timeouts(Duration::from_secs(2), Duration::from_secs(10));
    s.client_mut().set_low_speed(LowSpeed {
        limit,
        time: Duration::from_secs(secs),
    });
    s
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// One byte per second: every attempt is cut off after the 2 s window, the
/// blob is fetched again (1 + MAX_RETRIES attempts), then the pull fails
/// naming the blob and the rate, with nothing left in the repo.
#[test]
fn a_trickling_blob_is_cut_off_retried_and_refused() {
    let img =
        TrickleImage::start(|req, layer, _| drip(req, layer, 1, Duration::from_secs(1), true));
    let (_tmp, st) = store();
    let mut src = trickle_source(&img, 1000, 2);
    let t = Instant::now();
    let e =
        syscontainer::store::pull(&st, &mut src, &mut syscontainer::store::NoProgress).unwrap_err();
    let took = t.elapsed();
    let attempts = 1 + syscontainer::source::registry::MAX_RETRIES as u64;
    // Each attempt lasts the window (2 s), rounded up to the next byte (1 s).
    assert!(
        took >= Duration::from_secs(2 * attempts) && took < Duration::from_secs(3 * attempts + 2),
        "{took:?}: {e}"
    );
    let msg = chain(&e);
    let slow = match &e {
        syscontainer::store::StoreError::Source {
            source: SourceError::Slow(s),
            ..
        } => s.clone(),
        other => panic!("not a slow-transfer error: {msg} ({other:?})"),
    };
    assert_eq!(slow.attempts as u64, attempts);
    assert!(slow.rate > 0.2 && slow.rate < 2.0, "{slow:?}");
    assert!(
        msg.contains(&format!("blob {}", img.digest())) && msg.contains("B/s"),
        "{msg}"
    );
    assert_eq!(e.exit_code(), syscontainer::exit::FAILURE);
    // Each retry resumed where the last one stopped.
    let reqs = img.blob_requests();
    assert_eq!(reqs.len() as u64, attempts, "{reqs:?}");
    assert_eq!(reqs[0].range, None);
    for r in &reqs[1..] {
        let n: u64 = r.range.as_deref().unwrap()[6..]
            .trim_end_matches('-')
            .parse()
            .unwrap();
        assert!(n >= 1, "{reqs:?}");
    }
    // Nothing left behind: no refs, no image, fsck clean; the lock is free.
    assert_eq!(ostree(&st.repo_path(), &["refs"]).trim(), "");
    assert!(st.images().unwrap().is_empty());
    ostree(&st.repo_path(), &["fsck", "-q"]);
    drop(st.lock(syscontainer::store::LockMode::Exclusive).unwrap());
}

/// Slow on the first attempt only: the retry resumes from the byte it
/// stopped at (a 206), or re-reads and skips what it had (a registry that
/// ignores Range), and the pull succeeds with the verified layer.
#[test]
fn a_blob_slow_once_is_resumed() {
    for honour_range in [true, false] {
        let img = TrickleImage::start(move |req, layer, n| {
            if n == 0 {
                drip(req, layer, 100, Duration::from_millis(200), honour_range)
            } else {
                drip(req, layer, 4096, Duration::ZERO, honour_range)
            }
        });
        let (_tmp, st) = store();
        let mut src = trickle_source(&img, 1000, 1);
        let r =
            syscontainer::store::pull(&st, &mut src, &mut syscontainer::store::NoProgress).unwrap();
        assert_eq!(r.layers_fetched, 1);
        let reqs = img.blob_requests();
        assert_eq!(reqs.len(), 2, "{reqs:?}");
        let from: usize = reqs[1].range.as_deref().unwrap()[6..]
            .trim_end_matches('-')
            .parse()
            .unwrap();
        assert!(from >= 300 && from < img.layer.len(), "{reqs:?}");
        ostree(&st.repo_path(), &["fsck", "-q"]);
    }
}

/// Slow but above the limit (2.5 kB/s against 1 kB/s, for longer than the
/// window): never cut off.
#[test]
fn a_slow_blob_above_the_limit_is_not_cut_off() {
    let img = TrickleImage::start(|req, layer, _| {
        drip(req, layer, 250, Duration::from_millis(100), true)
    });
    let (_tmp, st) = store();
    let mut src = trickle_source(&img, 1000, 1);
    let t = Instant::now();
    let r = syscontainer::store::pull(&st, &mut src, &mut syscontainer::store::NoProgress).unwrap();
    assert!(
        t.elapsed() > Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(r.layers_fetched, 1);
    assert_eq!(img.blob_requests().len(), 1);
}
