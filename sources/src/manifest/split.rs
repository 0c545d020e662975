//! Splitting a YAML stream into its documents, remembering where each starts.
//!
//! The YAML parser does not report where a document begins, and warnings must say
//! it, so the stream is cut at document markers first. A line starting with `---`
//! (followed by a space or the end of the line) always starts a document: YAML
//! forbids such a line inside any scalar or collection.

/// One document's text, and the lines it occupies in the stream.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Document<'a> {
    pub text: &'a str,
    /// 1-based line of the document's first text (its `---` marker, if any).
    pub first_line: usize,
    /// 1-based line of its first content: not blank, a comment or a marker.
    pub start_line: usize,
}

/// The documents of `text`, in order.
pub(super) fn documents(text: &str) -> Vec<Document<'_>> {
    // (byte offset, 1-based line) where each document starts; tracked in one pass
    // so that a file of many documents costs linear time.
    let mut starts = vec![(0, 1)];
    let mut directives_only = true;
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        if is_marker(line) && offset > 0 && !directives_only {
            starts.push((offset, index + 1));
            directives_only = true;
        }
        let content = line.trim();
        if !content.is_empty() && !content.starts_with('#') && !content.starts_with('%') {
            directives_only = false;
        }
        offset += line.len();
    }
    starts.push((text.len(), 0));
    starts
        .windows(2)
        .map(|w| document(text, w[0], w[1].0))
        .collect()
}

fn document(text: &str, (start, first_line): (usize, usize), end: usize) -> Document<'_> {
    let chunk = &text[start..end];
    let content = chunk.split_inclusive('\n').position(|line| {
        let t = line.trim();
        let bare_marker =
            is_marker(t) && t[3..].trim_start().chars().next().is_none_or(|c| c == '#');
        !(t.is_empty() || t.starts_with('#') || t.starts_with('%') || bare_marker)
    });
    Document {
        text: chunk,
        first_line,
        start_line: first_line + content.unwrap_or(0),
    }
}

fn is_marker(line: &str) -> bool {
    line.strip_prefix("---")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace))
}
