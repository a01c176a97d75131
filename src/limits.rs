//! Every size, depth, hop and time bound koppeltest puts on what a DVA (or any peer) sends, in
//! one place: a broken or hostile DVA must never hang a run, crash it or exhaust its memory
//! (`tests/it/hostile*` holds the corpus that proves each bound).

/// The default time the mock PGO waits for one HTTP exchange (connect, TLS, head and body), on
/// the front channel and the back channel alike; a matrix can set its own
/// (`timeouts.request_ms`). 30 s: a browser's patience, and far above MedMij's token budget
/// (10 s) so a slow-but-answering DVA is judged by the budget checks, not cut off.
pub const REQUEST_TIMEOUT_MS: u64 = 30_000;

/// The shortest request time-out a matrix may set: below this, a loaded machine's ordinary
/// latency would read as a hostile DVA.
pub const MIN_REQUEST_TIMEOUT_MS: u64 = 500;

/// How much of a DVA-chosen text (a URL, a header value) a reason quotes: enough to recognise
/// it, never a 100 KB `error_description` or a megabyte-long Location in every report.
pub const QUOTED_CHARS: usize = 200;

/// `text` cut to [`QUOTED_CHARS`] characters, with `…` where it was cut.
pub fn shorten(text: &str) -> String {
    match text.char_indices().nth(QUOTED_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// The deepest element nesting the mock PGO's browser (and the snapshot of an HTML page) reads.
/// Form-owner, disabled-fieldset and template look-ups walk each element's ancestors, so a page
/// nested 10,000 deep costs quadratic time; real login and consent pages nest a few dozen deep.
/// 256: far above any real page, and html5ever's own limit for the adoption agency (which is
/// no bound on depth) plays no part.
pub const MAX_HTML_DEPTH: usize = 256;

/// How many problems one check's message lists; the rest are counted ("and 999,980 more").
/// Twenty show what is wrong; a Bundle of a million faulty entries must not make a message (and
/// a report) of tens of megabytes.
pub const MAX_LISTED_PROBLEMS: usize = 20;
