//! IRC (and Twitch chat, which speaks IRC) in three layers: [`proto`] reads and writes lines,
//! [`session`] is the connection's state machine (capabilities, SASL, registration, nicks,
//! pings) driven by parsed messages and a clock, and [`connection`] runs one connection over
//! TCP or TLS, reconnecting with backoff, and hands chat to the rest of the bot. [`text`] makes
//! chat text safe in both directions; [`flood`] paces what the bot sends.

pub mod connection;
pub mod flood;
pub mod proto;
pub mod session;
pub mod text;
