//! `docker:NAME[:TAG]`: an image in a local Docker engine (or anything that
//! speaks its API, such as `podman system service`).
//!
//! `GET /images/NAME/get` returns a docker-archive stream. The socket is
//! `/var/run/docker.sock`, or `DOCKER_HOST=unix:///path` (which the binary
//! reads into [`SourceOptions::docker_host`]). ureq cannot talk over a unix
//! socket, so a minimal HTTP/1.1 client lives here (Content-Length, chunked,
//! or read-to-close bodies). The stream is not seekable, so it is
//! spooled to an unnamed temporary file under `/var/tmp` (in the root) and read
//! by [`DockerArchiveSource`].

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::dockertar::DockerArchiveSource;
use super::{Descriptor, ImageSource, ResolvedImage, SourceError, SourceOptions};
use crate::imgref::ImageRef;

pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";
/// Where the archive stream is spooled (under the root), when it exists.
pub const SPOOL_DIR: &str = "/var/tmp";
const MAX_HEADER_BYTES: usize = 64 << 10;
const MAX_ERROR_BODY: u64 = 64 << 10;
const IO_TIMEOUT: Duration = Duration::from_secs(300);

/// The engine socket: `DOCKER_HOST=unix://PATH`, else the default.
pub fn socket_from_env(docker_host: Option<&str>) -> Result<PathBuf, String> {
    match docker_host.filter(|h| !h.is_empty()) {
        None => Ok(PathBuf::from(DEFAULT_SOCKET)),
        Some(h) => match h.strip_prefix("unix://") {
            Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
            _ => Err(format!(
                "DOCKER_HOST='{h}' is not supported; only unix:///path sockets are"
            )),
        },
    }
}

pub struct EngineSource {
    name: String,
    image: ImageRef,
    socket: PathBuf,
    spool_dir: PathBuf,
    archive: Option<DockerArchiveSource>,
}

impl EngineSource {
    pub fn new(name: &str, opts: &SourceOptions) -> Result<Self, SourceError> {
        let image = ImageRef::parse(name)?;
        let socket =
            socket_from_env(opts.docker_host.as_deref()).map_err(|reason| SourceError::Spec {
                spec: format!("docker:{name}"),
                reason,
            })?;
        let spool = opts.root.join(SPOOL_DIR);
        let spool_dir = if spool.is_dir() {
            spool
        } else {
            std::env::temp_dir()
        };
        Ok(EngineSource {
            name: name.to_string(),
            image,
            socket,
            spool_dir,
            archive: None,
        })
    }

    /// Use another socket than `DOCKER_HOST` / the default.
    pub fn with_socket(mut self, socket: impl Into<PathBuf>) -> Self {
        self.socket = socket.into();
        self
    }

    fn socket_label(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    fn io_err(&self, what: &str, e: io::Error) -> SourceError {
        SourceError::EngineIo {
            socket: self.socket_label(),
            what: what.to_string(),
            source: e,
        }
    }

    /// Fetch `docker save` output into a temporary file.
    fn spool(&self) -> Result<std::fs::File, SourceError> {
        let path = format!("/images/{}/get", percent_encode(&self.name));
        let (status, body) =
            http_get(&self.socket, &path).map_err(|e| self.io_err(&format!("GET {path}"), e))?;
        if status != 200 {
            let raw =
                super::read_capped(body, MAX_ERROR_BODY, "engine error body").unwrap_or_default();
            let msg = serde_json::from_slice::<serde_json::Value>(&raw)
                .ok()
                .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(String::from))
                .unwrap_or_else(|| String::from_utf8_lossy(&raw).trim().to_string());
            return Err(SourceError::Engine {
                socket: self.socket_label(),
                detail: format!("image '{}': HTTP {status}: {msg}", self.name),
            });
        }
        let mut f = tempfile::tempfile_in(&self.spool_dir).map_err(|e| SourceError::File {
            what: "creating a spool file for the engine's archive",
            path: self.spool_dir.clone(),
            source: e,
        })?;
        let mut body = body;
        io::copy(&mut body, &mut f)
            .map_err(|e| self.io_err(&format!("reading the archive of '{}'", self.name), e))?;
        Ok(f)
    }
}

impl ImageSource for EngineSource {
    fn describe(&self) -> String {
        format!(
            "Docker engine image {} ({})",
            self.name,
            self.socket_label()
        )
    }

    fn resolve(&mut self) -> Result<ResolvedImage, SourceError> {
        let f = self.spool()?;
        let label = self.describe();
        let mut a =
            DockerArchiveSource::from_file(f, label, Some(self.image.canonical()), &self.name)?;
        let r = a.resolve()?;
        self.archive = Some(a);
        Ok(r)
    }

    fn open_blob(&mut self, d: &Descriptor) -> Result<Box<dyn Read + Send + '_>, SourceError> {
        let socket = self.socket_label();
        match &mut self.archive {
            Some(a) => a.open_blob(d),
            None => Err(SourceError::Engine {
                socket,
                detail: format!("blob {} requested before resolve", d.digest),
            }),
        }
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/' | b':' | b'@') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `GET path` over a unix socket. Returns the status and the decoded body.
pub fn http_get(socket: &Path, path: &str) -> io::Result<(u16, Box<dyn Read + Send>)> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: syscontainer/{}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    )?;
    s.flush()?;
    let mut r = BufReader::with_capacity(64 << 10, s);
    let (status, headers) = read_head(&mut r)?;
    let header = |k: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    };
    let body: Box<dyn Read + Send> = if header("Transfer-Encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        Box::new(ChunkedReader::new(r))
    } else if let Some(len) = header("Content-Length") {
        let len: u64 = len
            .trim()
            .parse()
            .map_err(|_| invalid("bad Content-Length"))?;
        Box::new(LengthReader {
            inner: r,
            left: len,
        })
    } else {
        Box::new(r)
    };
    Ok((status, body))
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

fn read_line(r: &mut impl BufRead, budget: &mut usize) -> io::Result<String> {
    let mut line = Vec::new();
    let n = r.take(*budget as u64 + 1).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed in the HTTP header",
        ));
    }
    if n > *budget {
        return Err(invalid("HTTP header too long"));
    }
    *budget -= n;
    while line.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| invalid("HTTP header is not UTF-8"))
}

type Headers = Vec<(String, String)>;

fn read_head(r: &mut impl BufRead) -> io::Result<(u16, Headers)> {
    let mut budget = MAX_HEADER_BYTES;
    loop {
        let status_line = read_line(r, &mut budget)?;
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        if !version.starts_with("HTTP/1.") {
            return Err(invalid("not an HTTP/1.x response"));
        }
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid("bad HTTP status line"))?;
        let mut headers = Vec::new();
        loop {
            let l = read_line(r, &mut budget)?;
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        // 1xx (100 Continue) is followed by the real response.
        if (100..200).contains(&status) {
            continue;
        }
        return Ok((status, headers));
    }
}

struct LengthReader<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for LengthReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the engine closed the connection before the end of the body",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// `Transfer-Encoding: chunked`.
pub struct ChunkedReader<R> {
    inner: R,
    left_in_chunk: u64,
    done: bool,
}

impl<R: BufRead> ChunkedReader<R> {
    pub fn new(inner: R) -> Self {
        ChunkedReader {
            inner,
            left_in_chunk: 0,
            done: false,
        }
    }
}

impl<R: BufRead> Read for ChunkedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left_in_chunk == 0 {
            let mut budget = 4096;
            let line = read_line(&mut self.inner, &mut budget)?;
            let size = line.split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size line"))?;
            if size == 0 {
                // Trailers, up to the empty line.
                let mut budget = MAX_HEADER_BYTES;
                while !read_line(&mut self.inner, &mut budget)?.is_empty() {}
                self.done = true;
                return Ok(0);
            }
            self.left_in_chunk = size;
        }
        let want = buf
            .len()
            .min(self.left_in_chunk.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the engine closed the connection inside a chunk",
            ));
        }
        self.left_in_chunk -= n as u64;
        if self.left_in_chunk == 0 {
            let mut budget = 2;
            let crlf = read_line(&mut self.inner, &mut budget)?;
            if !crlf.is_empty() {
                return Err(invalid("chunk not followed by CRLF"));
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dechunk(raw: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        ChunkedReader::new(raw).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn chunked_bodies() {
        assert_eq!(
            dechunk(b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: y\r\n\r\n").unwrap(),
            b"hello, world"
        );
        assert_eq!(dechunk(b"0\r\n\r\n").unwrap(), b"");
        assert!(dechunk(b"5\r\nhel").is_err());
        assert!(dechunk(b"zz\r\n").is_err());
        assert!(dechunk(b"2\r\nhixx").is_err());
    }

    #[test]
    fn heads() {
        let mut r = &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"[..];
        let (status, headers) = read_head(&mut r).unwrap();
        assert_eq!(status, 404);
        assert_eq!(headers[1], ("Content-Length".into(), "2".into()));
        assert_eq!(r, b"{}");
        assert!(read_head(&mut &b"SSH-2.0\r\n"[..]).is_err());
        let long = format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "a".repeat(70_000));
        assert!(read_head(&mut long.as_bytes()).is_err());
    }

    #[test]
    fn docker_host() {
        assert_eq!(
            socket_from_env(None).unwrap(),
            PathBuf::from(DEFAULT_SOCKET)
        );
        assert_eq!(
            socket_from_env(Some("unix:///tmp/p.sock")).unwrap(),
            PathBuf::from("/tmp/p.sock")
        );
        assert!(socket_from_env(Some("tcp://1.2.3.4:2375")).is_err());
        assert_eq!(percent_encode("a/b:c d"), "a/b:c%20d");
    }
}
