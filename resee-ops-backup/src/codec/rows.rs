//! Counting each table's rows in a plain-format dump as it streams past: the lines between
//! `COPY table (...) FROM stdin;` and `\.`. COPY's text format escapes newlines inside values, so each line
//! is one row. The counts describe exactly the snapshot `pg_dump` dumped, which a separate `count(*)` could not.

use std::collections::BTreeMap;

/// The longest statement line looked at (a `COPY` header names its columns; longer lines are not `COPY`s).
const LINE_CAP: usize = 64 * 1024;

/// Feeds on the raw dump, in pieces of any size.
#[derive(Debug, Default)]
pub(crate) struct RowCounter {
    /// The start of the current line (at most [`LINE_CAP`] bytes; 3 inside COPY data).
    line: Vec<u8>,
    /// Whether the current line is longer than what `line` holds.
    overflow: bool,
    /// The table whose COPY data is streaming, and its rows so far.
    copy: Option<(String, u64)>,
    tables: BTreeMap<String, u64>,
}

impl RowCounter {
    pub(crate) fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match memchr::memchr(b'\n', data) {
                Some(i) => {
                    self.push(&data[..i]);
                    self.end_line();
                    data = &data[i + 1..];
                }
                None => {
                    self.push(data);
                    return;
                }
            }
        }
    }

    fn push(&mut self, part: &[u8]) {
        let cap = if self.copy.is_some() { 3 } else { LINE_CAP };
        let room = cap.saturating_sub(self.line.len());
        if part.len() > room {
            self.overflow = true;
        }
        self.line.extend_from_slice(&part[..part.len().min(room)]);
    }

    fn end_line(&mut self) {
        let line = std::mem::take(&mut self.line);
        let overflow = std::mem::replace(&mut self.overflow, false);
        match &mut self.copy {
            Some(_) if !overflow && line == b"\\." => {
                if let Some((table, rows)) = self.copy.take() {
                    *self.tables.entry(table).or_default() += rows;
                }
            }
            Some((_, rows)) => *rows += 1,
            None if !overflow => {
                if let Some(table) = copy_header(&line) {
                    self.copy = Some((table, 0));
                }
            }
            None => {}
        }
        self.line = line;
        self.line.clear();
    }

    /// The row count of every table whose COPY data ended (`\.`), by its name as the dump writes it.
    pub(crate) fn finish(self) -> BTreeMap<String, u64> {
        self.tables
    }
}

/// The table of a `COPY name (columns) FROM stdin;` line, as written (quoted where needed).
fn copy_header(line: &[u8]) -> Option<String> {
    let line = std::str::from_utf8(line).ok()?;
    let rest = line.strip_prefix("COPY ")?;
    if !line.ends_with(" FROM stdin;") {
        return None;
    }
    // A qualified name: identifiers, quoted ("a ""b""") or not, joined by dots.
    let bytes = rest.as_bytes();
    let mut i = 0;
    loop {
        if bytes.get(i) == Some(&b'"') {
            i += 1;
            loop {
                match bytes.get(i)? {
                    b'"' if bytes.get(i + 1) == Some(&b'"') => i += 2,
                    b'"' => {
                        i += 1;
                        break;
                    }
                    _ => i += 1,
                }
            }
        } else {
            let start = i;
            while bytes.get(i).is_some_and(|b| !matches!(b, b' ' | b'.' | b'(')) {
                i += 1;
            }
            if i == start {
                return None;
            }
        }
        if bytes.get(i) == Some(&b'.') {
            i += 1;
        } else {
            break;
        }
    }
    matches!(bytes.get(i), Some(b' ')).then(|| rest[..i].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "--\n-- PostgreSQL database dump\n--\nCREATE TABLE public.t (id int);\n\
        COPY public.t (id, note) FROM stdin;\n1\ta\\nb\n2\t\\N\n3\tx\n\\.\n\n\
        COPY \"Ünïcode schema\".\"empty \"\"table\"\"\" (id) FROM stdin;\n\\.\n\
        COPY public.big (id) FROM stdin;\n\\.x\n\\\\.\n\\.\n\
        -- COPY public.fake (id) FROM stdin; is a comment\n";

    #[test]
    fn counts_rows_whatever_the_piece_sizes() {
        let want = BTreeMap::from([
            ("\"Ünïcode schema\".\"empty \"\"table\"\"\"".to_owned(), 0),
            ("public.big".to_owned(), 2),
            ("public.t".to_owned(), 3),
        ]);
        for piece in [1, 2, 3, 7, 64, 4096] {
            let mut c = RowCounter::default();
            for chunk in DUMP.as_bytes().chunks(piece) {
                c.feed(chunk);
            }
            assert_eq!(c.finish(), want, "pieces of {piece}");
        }
    }

    #[test]
    fn a_dump_cut_inside_copy_data_counts_nothing_for_that_table() {
        let mut c = RowCounter::default();
        c.feed(b"COPY public.t (id) FROM stdin;\n1\n2\n");
        assert!(c.finish().is_empty());
    }
}
