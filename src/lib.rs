#![forbid(unsafe_code)]
pub mod exchange;
pub mod ids;
pub mod pki;
pub mod saml;
pub mod tls;
