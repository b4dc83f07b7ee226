//! What one request may ask of the server, how much work may wait, and how long a client may hold
//! a connection.
//!
//! Every limit turns into an HTTP status or a closed connection rather than into memory, CPU or
//! file descriptors spent: a body or a text over its size is refused with 413 before anything is
//! tokenized, a full queue with 503 and `Retry-After` before anything waits, a body that does not
//! arrive in time with 408; a connection that sends no request, or not all of its headers, in time
//! is closed, and beyond `max_connections` the connection idle the longest makes room (see
//! [`super::connections`]).

use std::time::Duration;
use thiserror::Error;

/// Limits of `attend serve` (the command-line flags of the same names).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Most characters in one text (`--max-chars`); longer texts get 413.
    pub max_chars: usize,
    /// Most texts in one request's `"texts"` (`--max-texts`); more get 413.
    pub max_texts: usize,
    /// Most requests waiting for a worker (`--queue`); one more gets 503.
    pub queue: usize,
    /// Most sentences one worker decodes together (`--max-batch`): requests waiting with the same
    /// search settings are merged up to this many sentences.
    pub max_batch: usize,
    /// Largest beam a request may ask for; larger gets 400.
    pub max_beam: usize,
    /// Most connections open at once (`--max-connections`): beyond it the one idle the longest is
    /// closed to make room, and when every one is busy with a request the new one gets 503.
    pub max_connections: usize,
    /// How long a connection may sit without sending a request (`--idle-timeout`), counted from
    /// its opening or from its last answer; then it is closed.
    pub idle_timeout: Duration,
    /// How long a request's headers may take to arrive (`--header-timeout`), counted from their
    /// first byte; then the connection is closed.
    pub header_timeout: Duration,
    /// How long a request's body may take to arrive (`--body-timeout`), counted from the end of its
    /// headers; then it gets 408 and the connection is closed.
    pub body_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_chars: 1000,
            max_texts: 32,
            queue: 64,
            max_batch: 32,
            max_beam: attend::config::MAX_BEAM,
            max_connections: 256,
            idle_timeout: Duration::from_secs(60),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
        }
    }
}

/// A limit that makes no sense.
#[derive(Debug, Error, PartialEq)]
#[error("{0} must be at least 1")]
pub struct LimitError(pub &'static str);

impl Limits {
    /// Checks that every limit admits at least one request.
    pub fn validate(&self) -> Result<(), LimitError> {
        for (name, v) in [
            ("--max-chars", self.max_chars),
            ("--max-texts", self.max_texts),
            ("--queue", self.queue),
            ("--max-batch", self.max_batch),
            ("max_beam", self.max_beam),
            ("--max-connections", self.max_connections),
        ] {
            if v == 0 {
                return Err(LimitError(name));
            }
        }
        for (name, t) in [
            ("--idle-timeout", self.idle_timeout),
            ("--header-timeout", self.header_timeout),
            ("--body-timeout", self.body_timeout),
        ] {
            if t.is_zero() {
                return Err(LimitError(name));
            }
        }
        Ok(())
    }

    /// Largest request body accepted, in bytes: every text at its longest with each character
    /// JSON-escaped (`\uXXXX`, 6 bytes), plus 4 KiB for the rest of the object.
    pub fn max_body_bytes(&self) -> usize {
        self.max_chars
            .saturating_mul(self.max_texts)
            .saturating_mul(6)
            .saturating_add(4096)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_zero_is_refused_by_name() {
        assert_eq!(Limits::default().validate(), Ok(()));
        let l = Limits {
            queue: 0,
            ..Limits::default()
        };
        assert_eq!(l.validate(), Err(LimitError("--queue")));
        assert_eq!(
            l.validate().unwrap_err().to_string(),
            "--queue must be at least 1"
        );
        let l = Limits {
            max_connections: 0,
            ..Limits::default()
        };
        assert_eq!(l.validate(), Err(LimitError("--max-connections")));
        let l = Limits {
            header_timeout: Duration::ZERO,
            ..Limits::default()
        };
        assert_eq!(l.validate(), Err(LimitError("--header-timeout")));
    }

    #[test]
    fn body_limit_holds_the_largest_escaped_request() {
        let l = Limits {
            max_chars: 10,
            max_texts: 2,
            ..Limits::default()
        };
        assert_eq!(l.max_body_bytes(), 10 * 2 * 6 + 4096);
        let huge = Limits {
            max_chars: usize::MAX,
            ..Limits::default()
        };
        assert_eq!(huge.max_body_bytes(), usize::MAX);
    }
}
