//! Test support for SecretSync's integration and end-to-end tests (not published).
//!
//! * [`proxy`]: a fault-injecting HTTP/1.1 proxy to put in front of the real local OpenBao or
//!   moto, driven by rules (answer an error, lose an answer after forwarding, damage a body,
//!   redirect elsewhere, reset the connection before or after forwarding, delay, stall), and a
//!   [`proxy::Recorder`] standing for "another origin".
//! * [`quota`]: a proxy that enforces AWS's request rates (per caller, region and kind of call)
//!   in front of moto, answering `ThrottlingException` like AWS.
//! * [`http`]: the small HTTP/1.1 reader and writer they are built on, also used by tests'
//!   stand-in servers ([`http::read_request`]).

pub mod http;
pub mod proxy;
pub mod quota;

#[cfg(test)]
mod tests;
