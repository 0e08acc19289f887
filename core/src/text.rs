//! Line splitting for unit files and templates, on bytes: the generator
//! splits every line of thousands of units, and a byte scan is cheaper on
//! short lines than `str`'s char searcher.

/// The lines of `s`, as [`str::lines`] gives them: split at `\n`, a `\r`
/// before the `\n` dropped, and no empty line after a final `\n`.
pub fn lines(s: &str) -> Lines<'_> {
    Lines { rest: s }
}

/// The iterator of [`lines`].
#[derive(Debug, Clone)]
pub struct Lines<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.rest.is_empty() {
            return None;
        }
        match find(self.rest, b'\n') {
            Some(i) => {
                let line = &self.rest[..i];
                self.rest = &self.rest[i + 1..];
                Some(line.strip_suffix('\r').unwrap_or(line))
            }
            None => Some(std::mem::take(&mut self.rest)),
        }
    }
}

/// The index of the first `b` (an ASCII byte) in `s`: eight bytes at a time
/// (a word with a zero byte where `b` is), then byte by byte.
pub fn find(s: &str, b: u8) -> Option<usize> {
    const LO: u64 = u64::from_ne_bytes([0x01; 8]);
    const HI: u64 = u64::from_ne_bytes([0x80; 8]);
    debug_assert!(b.is_ascii());
    let bytes = s.as_bytes();
    let pattern = LO * u64::from(b);
    let mut chunks = bytes.chunks_exact(8);
    let mut at = 0;
    for c in &mut chunks {
        let x = u64::from_ne_bytes(c.try_into().unwrap_or_default()) ^ pattern;
        if x.wrapping_sub(LO) & !x & HI != 0 {
            break;
        }
        at += 8;
    }
    bytes[at..].iter().position(|&c| c == b).map(|i| at + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_as_str_lines() {
        for s in [
            "",
            "\n",
            "\n\n",
            "a",
            "a\n",
            "a\nb",
            "a\r\nb\r\n",
            "a\r",
            "a\r\r\n",
            "\rx\r\n\r",
            "[Unit]\nDescription=é ü\n\n[Service]\r\nExecStart=/bin/true\n",
        ] {
            let want: Vec<&str> = s.lines().collect();
            let got: Vec<&str> = lines(s).collect();
            assert_eq!(got, want, "{s:?}");
        }
    }

    #[test]
    fn find_ascii() {
        assert_eq!(find("ab=c=d", b'='), Some(2));
        assert_eq!(find("é=", b'='), Some(2));
        assert_eq!(find("abc", b'='), None);
        assert_eq!(find("", b'='), None);
        // every position, in and after the 8-byte words, and bytes just
        // below and above the one looked for
        for n in 0..40 {
            for at in 0..=n {
                let mut s = "<>".repeat(n).into_bytes();
                s.truncate(n);
                if at < n {
                    s[at] = b'=';
                }
                let s = String::from_utf8(s).unwrap();
                let want = s.find('=');
                assert_eq!(find(&s, b'='), want, "{s:?}");
            }
        }
        assert_eq!(find("ééééé\n", b'\n'), Some(10));
    }
}
