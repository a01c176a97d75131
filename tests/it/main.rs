//! The one integration-test binary: everything here goes over the wire (TLS, mutual TLS on the
//! back channel, signed and encrypted SAML) between the mock PGO, the mock TVS and simulated
//! DVAs, through the same runner `koppeltest run` uses.

mod boundaries;
mod cli;
mod deviations;
mod evidence;
mod external;
mod golden;
mod helpers;
mod hostile;
mod hostile_fhir;
mod hostile_html;
mod hostile_http;
mod hostile_oauth;
mod hostile_saml;
mod hostile_secrets;
mod hostile_transport;
mod invariants;
mod launch;
mod mutation;
mod pgo_suite;
mod preflight;
mod privacy;
mod saml;
mod saml_sp;
mod shard;
mod snapshots;
mod soak;
mod tls;
mod xmlsec;
