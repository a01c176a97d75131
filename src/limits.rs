//! Every size, depth, hop and time bound koppeltest puts on what a DVA (or any peer) sends, in
//! one place: a broken or hostile DVA must never hang a run, crash it or exhaust its memory
//! (`tests/it/hostile*` holds the corpus that proves each bound). The README's "Limits" table
//! lists them. Those a vendor may need to raise are defaults of the matrix's `[timeouts]`
//! (`request_ms`) and `[limits]` tables (`max_body_mib`, `max_pages`, `max_redirects`,
//! `step_timeout_s`), and `max_wait_s`.

// ---- Settable in the matrix: these are the defaults. ----

/// The largest response body the mock PGO reads (`limits.max_body_mib`), in MiB: a GP record's
/// largest page is a few MiB; a hostile DVA cannot exhaust memory.
pub const MAX_BODY_MIB: u64 = 16;

/// The most pages one search is followed through (`limits.max_pages`): a 10,000-result record
/// is 100 pages at the simulated DVA's page size.
pub const MAX_PAGES: usize = 1000;

/// The most front-channel hops from the authorization request to the redirect URI
/// (`limits.max_redirects`): a real login takes about ten.
pub const MAX_REDIRECTS: usize = 25;

/// The longest one scenario step may take (`limits.step_timeout_s`), in seconds: above
/// MedMij's budgets (10 s and 60 s) with room for paging.
pub const STEP_TIMEOUT_S: u64 = 90;

// ---- Fixed. ----

/// While paging, an expired access token is refreshed at most this many times.
pub const MAX_REFRESHES: usize = 5;

/// How much of a body the exchange log keeps (the checks see all of it); bodies beyond are cut
/// in the reports, with the size said.
pub const MAX_LOGGED_BODY: usize = 64 * 1024;

/// Pages after the first are logged with this much of their body: a 10,000-resource record
/// would otherwise fill the reports with megabytes of evidence.
pub const LOGGED_PAGE_BODY: usize = 2 * 1024;

/// A TLS handshake (koppeltest's listeners and probes) that takes longer is abandoned.
pub const HANDSHAKE_TIMEOUT_S: u64 = 10;

/// The most XML nodes koppeltest parses in one SAML message (entity-expansion and size bombs).
pub const MAX_XML_NODES: u32 = 100_000;

/// The deepest XML nesting koppeltest parses in one SAML message, and shows in a snapshot.
pub const MAX_XML_DEPTH: usize = 64;

/// The most an evidence bundle may unpack to: a bundle is a run folder, not a decompression bomb.
pub const MAX_UNPACKED: u64 = 1 << 30;

/// The largest TLS record fragment a hello-level probe reads (2^14 plus the expansion TLS allows).
pub const MAX_TLS_FRAGMENT: usize = 16384 + 2048;

/// The largest ServerHello a probe reassembles.
pub const MAX_SERVER_HELLO: usize = 16384;

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

/// The largest request body the simulated DVA reads from a PGO under test (the PGO suite); a
/// larger one is answered 413. A token request is well under 1 KiB.
pub const MAX_PGO_REQUEST_BODY: usize = 1 << 20;

/// The most requests the PGO suite records per practice; more are counted, not kept (a PGO
/// stuck in a loop must not fill memory or the report).
pub const MAX_PGO_RECORDS: usize = 2000;

/// The most refreshes the mock PGO makes in one collection when it plays a PGO under test
/// (`koppeltest mock-pgo`): one per query and page with single-use tokens, and then some.
pub const MAX_COLLECT_REFRESHES: usize = 64;

/// The longest one connection through the PGO suite's front-channel router lives, in seconds,
/// idle or not (a browser keeps one open a while; a finished suite must not wait on it).
pub const ROUTED_CONNECTION_S: u64 = 600;

/// The longest row, column or scenario id: ids name folders and files of a run
/// (`cells/<row>/<column>/…`), and a file name may have 255 bytes on common file systems, with
/// room left for suffixes such as `.run-10.json`.
pub const MAX_ID_BYTES: usize = 100;
