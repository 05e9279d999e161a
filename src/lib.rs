//! tokend: an OAuth 2 token service whose revocations stick.
pub mod crypto;
pub mod store;
