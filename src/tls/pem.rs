//! PEM framing (RFC 7468) for CA bundles, strict: every `-----BEGIN` line
//! opens a block, and the block ends at the `-----END` line with the same
//! label. Text outside blocks is explanatory and skipped.
//!
//! rustls-pki-types has a PEM reader, but it passes over blocks whose label
//! it does not know, and its constant-time base64 (right for private keys)
//! is most of the cost of reading a bundle; CA certificates are public, and
//! a bundle must have every block accounted for.

/// One block: its label and its decoded contents, or why the block is
/// unreadable.
pub(crate) type Block<'a> = Result<(&'a [u8], Vec<u8>), PemError>;

/// Why a block cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PemError {
    #[error("a block has no END line")]
    NoEnd,
    #[error("a BEGIN line is malformed")]
    MalformedBegin,
    #[error("an END line outside a block")]
    StrayEnd,
    /// Readers disagree on such a marker (see `Line::of`).
    #[error("a BEGIN or END marker is not at the start of its line")]
    MarkerInLine,
    #[error("the END line does not match the BEGIN line")]
    MismatchedEnd,
    /// rustls' reader ends a line there too, OpenSSL's and Go's do not:
    /// refused so that they cannot see different blocks.
    #[error("a line break is a CR alone")]
    LoneCr,
    #[error("bad base64 ({0})")]
    Base64(String),
}

impl PemError {
    /// Whether reading can go on with the next block: after broken framing
    /// nothing says where the next block starts.
    fn is_framing(&self) -> bool {
        !matches!(self, Self::Base64(_))
    }
}

/// The blocks of `pem`, in order. After a framing error the iterator ends.
pub(crate) fn blocks(pem: &[u8]) -> Blocks<'_> {
    Blocks { rest: pem, body: Vec::new(), done: false }
}

pub(crate) struct Blocks<'a> {
    /// What is left to read.
    rest: &'a [u8],
    /// The base64 of the current block, kept to reuse its allocation.
    body: Vec<u8>,
    done: bool,
}

/// What a line is to the reader.
enum Line<'a> {
    /// A BEGIN line, with its label if well formed.
    Begin(Option<&'a [u8]>),
    /// An END line, with its label if well formed.
    End(Option<&'a [u8]>),
    /// Anything else, without surrounding blanks.
    Text(&'a [u8]),
    /// A line that cannot be read.
    Broken(PemError),
}

impl<'a> Line<'a> {
    fn of(line: &'a [u8]) -> Self {
        // Trailing spaces are all rustls' reader allows after a marker.
        let mut marker = line;
        while let [rest @ .., b' '] = marker {
            marker = rest;
        }
        if let Some(rest) = marker.strip_prefix(b"-----BEGIN") {
            return Self::Begin(label(rest));
        }
        if let Some(rest) = marker.strip_prefix(b"-----END") {
            return Self::End(label(rest));
        }
        // OpenSSL reads lines in pieces of 254 bytes, so a marker far into
        // a line can start a piece; Go and rustls ignore it. Refused.
        let has = |marker: &[u8]| memchr::memmem::find(line, marker).is_some();
        // (Base64 has no '-': most lines are decided by the memchr.)
        if memchr::memchr(b'-', line).is_some() && (has(b"-----BEGIN") || has(b"-----END")) {
            return Self::Broken(PemError::MarkerInLine);
        }
        // Spaces and tabs only: readers disagree on other blanks.
        Self::Text(trim_blanks(line))
    }
}

fn trim_blanks(mut line: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = line {
        line = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = line {
        line = rest;
    }
    line
}

/// The label of a marker line after `-----BEGIN` or `-----END`: a space,
/// the label, five dashes. An RFC 7468 label is printable characters with
/// single spaces or hyphens between them.
fn label(rest: &[u8]) -> Option<&[u8]> {
    let label = rest.strip_prefix(b" ")?.strip_suffix(b"-----")?;
    let plain = |b: &u8| b.is_ascii_graphic() && *b != b'-';
    let well_formed = match label {
        [] => true,
        [only] => plain(only),
        [first, .., last] if !plain(first) || !plain(last) => false,
        _ => {
            label.iter().all(|b| plain(b) || matches!(b, b'-' | b' '))
                && label.windows(2).all(|pair| plain(&pair[0]) || plain(&pair[1]))
        }
    };
    well_formed.then_some(label)
}

impl<'a> Blocks<'a> {
    /// The next line, without its end of line.
    fn next_line(&mut self) -> Option<Line<'a>> {
        if self.rest.is_empty() {
            return None;
        }
        // Lines end with LF or CRLF. RFC 7468 allows CR alone too, but
        // readers disagree on it (see `PemError::LoneCr`).
        let (line, rest) = match memchr::memchr2(b'\r', b'\n', self.rest) {
            None => (self.rest, &[][..]),
            Some(end) => match &self.rest[end..] {
                [b'\n', rest @ ..] | [b'\r', b'\n', rest @ ..] => (&self.rest[..end], rest),
                _ => return Some(Line::Broken(PemError::LoneCr)),
            },
        };
        self.rest = rest;
        Some(Line::of(line))
    }

    fn next_block(&mut self) -> Option<Block<'a>> {
        let label = loop {
            match self.next_line()? {
                Line::Begin(Some(label)) => break label,
                Line::Begin(None) => return Some(Err(PemError::MalformedBegin)),
                Line::End(_) => return Some(Err(PemError::StrayEnd)),
                Line::Broken(error) => return Some(Err(error)),
                Line::Text(_) => {}
            }
        };
        self.body.clear();
        loop {
            match self.next_line() {
                None | Some(Line::Begin(_)) => return Some(Err(PemError::NoEnd)),
                Some(Line::End(end)) if end == Some(label) => break,
                Some(Line::End(_)) => return Some(Err(PemError::MismatchedEnd)),
                Some(Line::Broken(error)) => return Some(Err(error)),
                Some(Line::Text(text)) => self.body.extend_from_slice(text),
            }
        }
        Some(decode(&self.body).map(|der| (label, der)))
    }
}

/// Strict base64: one padded sequence, as other PEM readers want (the
/// decoder alone would take padded pieces one after another).
fn decode(base64: &[u8]) -> Result<Vec<u8>, PemError> {
    if let Some(padding) = memchr::memchr(b'=', base64)
        && base64[padding..].iter().any(|b| *b != b'=')
    {
        return Err(PemError::Base64("padding before the end".into()));
    }
    data_encoding::BASE64.decode(base64).map_err(|e| PemError::Base64(e.to_string()))
}

impl<'a> Iterator for Blocks<'a> {
    type Item = Block<'a>;

    fn next(&mut self) -> Option<Block<'a>> {
        if self.done {
            return None;
        }
        let block = self.next_block();
        self.done = match &block {
            None => true,
            Some(read) => read.as_ref().is_err_and(PemError::is_framing),
        };
        block
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pem: &str) -> Vec<Result<(String, Vec<u8>), PemError>> {
        blocks(pem.as_bytes())
            .map(|b| b.map(|(label, der)| (String::from_utf8(label.to_vec()).unwrap(), der)))
            .collect()
    }

    fn ok(label: &str, der: &[u8]) -> Result<(String, Vec<u8>), PemError> {
        Ok((label.to_owned(), der.to_vec()))
    }

    #[test]
    fn blocks_labels_and_explanatory_text() {
        let pem = "issuer: ops\n-----BEGIN CERTIFICATE-----\nAAEC\nAw==\n-----END CERTIFICATE-----\n\
                   between\r\n-----BEGIN PRIVATE KEY-----  \r\n  BAU=\r\n-----END PRIVATE KEY-----";
        assert_eq!(read(pem), [ok("CERTIFICATE", &[0, 1, 2, 3]), ok("PRIVATE KEY", &[4, 5])]);
        assert_eq!(read(""), []);
        assert_eq!(read("no blocks\nat all\n"), []);
        // A block with nothing in it is read; the certificate parser refuses it.
        assert_eq!(read("-----BEGIN X-----\n-----END X-----\n"), [ok("X", &[])]);
        assert_eq!(read("-----BEGIN X509 CRL-----\n-----END X509 CRL-----"), [ok("X509 CRL", &[])]);
        assert_eq!(read("-----BEGIN A-B-----\n-----END A-B-----"), [ok("A-B", &[])]);
    }

    #[test]
    fn bad_base64_spoils_its_block_only() {
        let pem =
            "-----BEGIN A-----\nAA!C\n-----END A-----\n-----BEGIN B-----\nAAEC\n-----END B-----\n";
        let blocks = read(pem);
        assert!(matches!(&blocks[0], Err(PemError::Base64(_))), "{blocks:?}");
        assert_eq!(blocks[1], ok("B", &[0, 1, 2]));
        // Padding is required, and stray bits are not ignored.
        for body in ["AAE", "AAF=", "AA EC", "AA==AAEC", "AA==\nAAEC", "AAEC====", "\x0cAAEC"] {
            let pem = format!("-----BEGIN A-----\n{body}\n-----END A-----\n");
            assert!(matches!(&read(&pem)[..], [Err(PemError::Base64(_))]), "{body}");
        }
    }

    #[test]
    fn broken_framing_ends_reading() {
        let cases = [
            ("-----BEGIN A-----\nAAEC\n", PemError::NoEnd),
            (
                "-----BEGIN A-----\nAAEC\n-----BEGIN A-----\nAAEC\n-----END A-----\n",
                PemError::NoEnd,
            ),
            ("-----BEGIN A-----\nAAEC\n-----END B-----\n", PemError::MismatchedEnd),
            ("-----BEGIN A\nAAEC\n-----END A-----\n", PemError::MalformedBegin),
            ("-----BEGIN A------\nAAEC\n-----END A------\n", PemError::MalformedBegin),
            ("-----BEGIN  A-----\nAAEC\n-----END  A-----\n", PemError::MalformedBegin),
            ("-----BEGIN A  B-----\nAAEC\n-----END A  B-----\n", PemError::MalformedBegin),
            ("-----BEGIN A-----\t\nAAEC\n-----END A-----\n", PemError::MalformedBegin),
            ("-----BEGIN-----\nAAEC\n-----END-----\n", PemError::MalformedBegin),
            ("-----BEGIN A-----\nAAEC\n-----END A-----x\n", PemError::MismatchedEnd),
            ("text\n-----END A-----\n", PemError::StrayEnd),
            ("\t-----BEGIN A-----\nAAEC\n-----END A-----\n", PemError::MarkerInLine),
            ("-----BEGIN A-----\nAAEC\n -----END A-----\n", PemError::MarkerInLine),
            ("text\r-----BEGIN A-----\nAAEC\n-----END A-----\n", PemError::LoneCr),
            ("some text -----BEGIN A-----\nAAEC\n-----END A-----\n", PemError::MarkerInLine),
            ("-----BEGIN A-----\nAAEC-----END A-----\n", PemError::MarkerInLine),
            ("-----BEGIN A-----\nAA\rEC\n-----END A-----\n", PemError::LoneCr),
            ("-----BEGIN --------\nAAEC\n-----END --------\n", PemError::MalformedBegin),
            ("-----BEGIN - -----\nAAEC\n-----END - -----\n", PemError::MalformedBegin),
        ];
        let next = "-----BEGIN C-----\nAAEC\n-----END C-----\n";
        for (pem, error) in cases {
            assert_eq!(read(&format!("{pem}{next}")), [Err(error)], "{pem}");
        }
    }
}
