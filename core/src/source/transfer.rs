//! The low-speed limit of registry transfers, as curl's `--speed-limit` and
//! `--speed-time`: a blob that arrives slower than [`LowSpeed::limit`] bytes
//! per second, on average over [`LowSpeed::time`], is aborted and fetched
//! again from where it stopped (`Range: bytes=N-`; a registry that ignores
//! the range sends the whole blob, and the part already read is skipped),
//! under the registry client's retry policy. When the retries are spent, the
//! read fails with [`SlowTransfer`], naming the blob and the rate measured.
//!
//! Every single read of a trickling body succeeds, so the read timeout
//! never fires: without this a blob sent at 1 byte per second holds a pull,
//! and the store's lock, for as long as the blob lasts.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use thiserror::Error;

use super::SourceError;

/// The minimum average rate of a transfer over a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LowSpeed {
    /// Bytes per second; 0 disables the limit.
    pub limit: u64,
    /// The window the rate is averaged over; zero disables the limit.
    pub time: Duration,
}

impl LowSpeed {
    /// 1000 bytes per second over 30 s.
    pub const DEFAULT: LowSpeed = LowSpeed {
        limit: 1000,
        time: Duration::from_secs(30),
    };

    /// No limit.
    pub const OFF: LowSpeed = LowSpeed {
        limit: 0,
        time: Duration::ZERO,
    };

    fn enabled(&self) -> bool {
        self.limit > 0 && !self.time.is_zero()
    }
}

impl Default for LowSpeed {
    fn default() -> Self {
        LowSpeed::DEFAULT
    }
}

/// A transfer that stayed under the low-speed limit on every attempt. It
/// travels inside an [`io::Error`] of kind [`io::ErrorKind::TimedOut`]; get
/// it back with [`SlowTransfer::from_io`].
#[derive(Debug, Clone, PartialEq, Error)]
#[error(
    "{what}: transfer too slow: {rate:.1} B/s over {secs:.1} s, under the limit of {limit} B/s \
     over {window} s ({attempts} attempts, {got} of {size} bytes received)"
)]
pub struct SlowTransfer {
    /// The blob, e.g. `blob sha256:... of registry/name`.
    pub what: String,
    /// Bytes per second measured over the last window.
    pub rate: f64,
    /// The length of that window, in seconds.
    pub secs: f64,
    pub limit: u64,
    pub window: u64,
    pub attempts: u32,
    /// Bytes of the blob received before giving up.
    pub got: u64,
    pub size: u64,
}

impl SlowTransfer {
    /// The documented exit code: a network failure.
    pub fn exit_code(&self) -> i32 {
        crate::exit::FAILURE
    }

    /// The slow transfer inside an I/O error, if that is what it is.
    pub fn from_io(e: &io::Error) -> Option<&SlowTransfer> {
        e.get_ref().and_then(|i| i.downcast_ref::<SlowTransfer>())
    }

    fn to_io(&self) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, self.clone())
    }
}

/// Measures the average rate over consecutive windows.
#[derive(Debug, Clone)]
pub(crate) struct Meter {
    ls: LowSpeed,
    start: Instant,
    bytes: u64,
}

impl Meter {
    pub(crate) fn new(ls: LowSpeed, now: Instant) -> Self {
        Meter {
            ls,
            start: now,
            bytes: 0,
        }
    }

    /// Count `n` bytes received at `now`. When a whole window has passed:
    /// `Some((rate, secs))` if its average rate is under the limit, else a
    /// new window starts.
    pub(crate) fn add(&mut self, n: u64, now: Instant) -> Option<(f64, f64)> {
        if !self.ls.enabled() {
            return None;
        }
        self.bytes += n;
        let el = now.saturating_duration_since(self.start);
        if el < self.ls.time {
            return None;
        }
        let secs = el.as_secs_f64();
        let rate = self.bytes as f64 / secs;
        if rate < self.ls.limit as f64 {
            return Some((rate, secs));
        }
        self.start = now;
        self.bytes = 0;
        None
    }
}

/// A fresh body from `offset`: the reader, and how many of its first bytes
/// to drop (the registry ignored the range and sent the whole blob).
pub(crate) type Reopened = (Box<dyn Read + Send + Sync>, u64);

/// How a [`Resuming`] body fetches the rest of its blob.
pub(crate) type Reopen<'a> = Box<dyn FnMut(u64) -> Result<Reopened, SourceError> + Send + 'a>;

/// A blob body under the low-speed limit, re-fetched from where it stopped
/// (at most `retries` times, `delay` doubling) when a window is too slow.
pub(crate) struct Resuming<'a> {
    what: String,
    size: u64,
    body: Box<dyn Read + Send + Sync>,
    reopen: Reopen<'a>,
    ls: LowSpeed,
    meter: Meter,
    retries: u32,
    delay: Duration,
    attempt: u32,
    /// Bytes handed out.
    got: u64,
    /// Bytes still to drop from the current body.
    skip: u64,
    /// The last window was too slow: re-fetch before reading on.
    slow: Option<(f64, f64)>,
    failed: Option<SlowTransfer>,
}

impl<'a> Resuming<'a> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        what: String,
        size: u64,
        body: Box<dyn Read + Send + Sync>,
        reopen: Reopen<'a>,
        ls: LowSpeed,
        retries: u32,
        delay: Duration,
    ) -> Self {
        Resuming {
            what,
            size,
            body,
            reopen,
            ls,
            meter: Meter::new(ls, Instant::now()),
            retries,
            delay,
            attempt: 0,
            got: 0,
            skip: 0,
            slow: None,
            failed: None,
        }
    }

    fn retry(&mut self, rate: f64, secs: f64) -> io::Result<()> {
        if self.attempt >= self.retries {
            let f = SlowTransfer {
                what: self.what.clone(),
                rate,
                secs,
                limit: self.ls.limit,
                window: self.ls.time.as_secs(),
                attempts: self.attempt + 1,
                got: self.got,
                size: self.size,
            };
            let e = f.to_io();
            self.failed = Some(f);
            return Err(e);
        }
        let delay = self.delay * 2u32.pow(self.attempt);
        self.attempt += 1;
        log::warn!(
            "{}: {rate:.1} B/s over {secs:.1} s is under the limit of {} B/s; \
             fetching the rest again from byte {} (retry {} of {})",
            self.what,
            self.ls.limit,
            self.got,
            self.attempt,
            self.retries
        );
        std::thread::sleep(delay);
        let (body, skip) = (self.reopen)(self.got).map_err(io::Error::other)?;
        self.body = body;
        self.skip = skip;
        self.meter = Meter::new(self.ls, Instant::now());
        Ok(())
    }
}

impl Read for Resuming<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(f) = &self.failed {
                return Err(f.to_io());
            }
            if let Some((rate, secs)) = self.slow.take() {
                self.retry(rate, secs)?;
            }
            let n = self.body.read(buf)?;
            if n == 0 {
                return Ok(0);
            }
            let dropped = (n as u64).min(self.skip) as usize;
            self.skip -= dropped as u64;
            let kept = n - dropped;
            if dropped > 0 {
                buf.copy_within(dropped..n, 0);
            }
            self.got += kept as u64;
            if let Some(slow) = self.meter.add(n as u64, Instant::now()) {
                if self.got < self.size {
                    self.slow = Some(slow);
                }
            }
            if kept > 0 {
                return Ok(kept);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meter_flags_a_slow_window_only_once_it_is_over() {
        let t0 = Instant::now();
        let ls = LowSpeed {
            limit: 100,
            time: Duration::from_secs(2),
        };
        let mut m = Meter::new(ls, t0);
        // 150 bytes in the first 2 s: 75 B/s.
        assert_eq!(m.add(100, t0 + Duration::from_secs(1)), None);
        let (rate, secs) = m.add(50, t0 + Duration::from_secs(2)).unwrap();
        assert_eq!((rate, secs), (75.0, 2.0));
        // Fast enough: a new window starts, and is judged on its own.
        let mut m = Meter::new(ls, t0);
        assert_eq!(m.add(300, t0 + Duration::from_secs(2)), None);
        assert_eq!(m.add(10, t0 + Duration::from_secs(3)), None);
        assert!(m.add(10, t0 + Duration::from_secs(4)).is_some());
        // Off.
        let mut m = Meter::new(LowSpeed::OFF, t0);
        assert_eq!(m.add(0, t0 + Duration::from_secs(3600)), None);
    }

    /// Yields `chunks` one per read, with `pause` before each.
    struct Drip {
        chunks: Vec<Vec<u8>>,
        pause: Duration,
    }

    impl Read for Drip {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.chunks.is_empty() {
                return Ok(0);
            }
            std::thread::sleep(self.pause);
            let mut c = self.chunks.remove(0);
            let n = c.len().min(buf.len());
            buf[..n].copy_from_slice(&c[..n]);
            if n < c.len() {
                self.chunks.insert(0, c.split_off(n));
            }
            Ok(n)
        }
    }

    fn drip(data: &[u8], chunk: usize, pause: Duration) -> Box<dyn Read + Send + Sync> {
        Box::new(Drip {
            chunks: data.chunks(chunk).map(<[u8]>::to_vec).collect(),
            pause,
        })
    }

    #[test]
    fn a_slow_body_is_resumed_where_it_stopped() {
        let data: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
        let ls = LowSpeed {
            limit: 1000,
            time: Duration::from_millis(100),
        };
        // Slow at first; the re-fetch ignores the range (skip) and is fast.
        let d2 = data.clone();
        let offsets = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let o2 = offsets.clone();
        let reopen: Reopen = Box::new(move |from| {
            o2.lock().unwrap().push(from);
            Ok((drip(&d2, 1000, Duration::ZERO), from))
        });
        let mut r = Resuming::new(
            "blob x".into(),
            data.len() as u64,
            drip(&data, 10, Duration::from_millis(30)),
            reopen,
            ls,
            3,
            Duration::from_millis(1),
        );
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        assert_eq!(got, data);
        let offsets = offsets.lock().unwrap().clone();
        assert_eq!(offsets.len(), 1, "{offsets:?}");
        assert!(offsets[0] > 0 && offsets[0] < 3000, "{offsets:?}");
    }

    #[test]
    fn a_body_slow_on_every_attempt_fails_naming_it() {
        let data = vec![7u8; 1000];
        let ls = LowSpeed {
            limit: 1000,
            time: Duration::from_millis(50),
        };
        let d2 = data.clone();
        let mut opens = 0;
        let reopen: Reopen = Box::new(move |from| {
            opens += 1;
            assert!(opens <= 2, "more re-fetches than retries");
            Ok((drip(&d2[from as usize..], 1, Duration::from_millis(20)), 0))
        });
        let mut r = Resuming::new(
            "blob sha256:abc of x".into(),
            1000,
            drip(&data, 1, Duration::from_millis(20)),
            reopen,
            ls,
            2,
            Duration::from_millis(1),
        );
        let e = io::copy(&mut r, &mut io::sink()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        let s = SlowTransfer::from_io(&e).unwrap();
        assert_eq!(s.attempts, 3);
        assert!(s.rate < 1000.0 && s.got < 1000, "{s:?}");
        assert!(
            e.to_string()
                .contains("blob sha256:abc of x: transfer too slow"),
            "{e}"
        );
        // Sticky: the next read says the same.
        let e2 = r.read(&mut [0u8; 8]).unwrap_err();
        assert!(SlowTransfer::from_io(&e2).is_some());
    }
}
