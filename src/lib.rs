//! tokend: an OAuth 2 token service whose revocations stick.
//!
//! Data flows one way: `http → service → store / crypto`. [`startup::Application`] builds the
//! server so that tests can run it on port 0.

pub mod cli;
pub mod config;
pub mod crypto;
pub mod http;
pub mod metrics;
pub mod service;
pub mod startup;
pub mod store;
pub mod telemetry;
