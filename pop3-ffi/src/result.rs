//! Result codes: what every fallible C function returns.

use core::ffi::c_char;

use pop3_proto::UsageError;

/// What a call did: `POP3_OK` (0), `POP3_DONE` (1, nothing to report now), or
/// a negative error code. Turn any value into text with
/// `pop3_result_message`.
#[allow(non_camel_case_types)]
pub type pop3_result = i32;

/// The call succeeded.
pub const POP3_OK: pop3_result = 0;
/// Nothing to report now: no event is ready, or no bytes are waiting to be
/// written. Not an error; the out-parameters were not written.
pub const POP3_DONE: pop3_result = 1;
/// A pointer argument that must not be NULL was NULL.
pub const POP3_ERR_NULL: pop3_result = -1;
/// An argument is invalid: not UTF-8, empty, containing CR, LF or NUL,
/// message number 0, an unknown login method name, an index out of range, or
/// more bytes reported than were offered.
pub const POP3_ERR_INVALID_ARGUMENT: pop3_result = -2;
/// The command does not fit the session's state (for example RETR before
/// login, STLS after login, or tls_established with no TLS upgrade pending).
pub const POP3_ERR_WRONG_STATE: pop3_result = -3;
/// The command would send credentials over an unencrypted connection and the
/// configuration does not allow it.
pub const POP3_ERR_PLAINTEXT_CREDENTIALS: pop3_result = -4;
/// APOP needs a timestamp in the server's greeting and there is none.
pub const POP3_ERR_NO_APOP_TIMESTAMP: pop3_result = -5;
/// The SASL mechanism failed on the client's side.
pub const POP3_ERR_SASL: pop3_result = -6;
/// The session is over: QUIT was answered, the connection closed, or the
/// `POP3_EVENT_CLOSED` event was already delivered.
pub const POP3_ERR_CLOSED: pop3_result = -7;
/// The server broke the protocol. Fatal for the session.
pub const POP3_ERR_PROTOCOL: pop3_result = -8;
/// The command was dropped unsent because a STLS or login before it failed.
pub const POP3_ERR_CANCELLED: pop3_result = -9;
/// The server does not offer STLS.
pub const POP3_ERR_STLS_UNAVAILABLE: pop3_result = -10;
/// The call was made out of order: `pop3_client_input_written` without a
/// `pop3_client_input_buffer` just before it, or `pop3_client_output_written`
/// with nothing pending.
pub const POP3_ERR_CALL_ORDER: pop3_result = -11;
/// The library hit an internal bug (a Rust panic, caught at the boundary).
/// The client it happened in refuses every later call except
/// `pop3_client_free`.
pub const POP3_ERR_PANIC: pop3_result = -12;
/// The system's random number generator failed (needed for SCRAM nonces).
pub const POP3_ERR_RANDOM: pop3_result = -13;
/// A usage error this version of the library has no dedicated code for.
pub const POP3_ERR_USAGE: pop3_result = -14;
/// The TLS handshake after STLS failed (`pop3_client_tls_failed`): the
/// `result` of the `POP3_EVENT_CLOSED` that ends such a session.
pub const POP3_ERR_TLS: pop3_result = -15;
/// The client already holds as much unprocessed input as it takes (one read
/// on top of a partial line): handle events with `pop3_client_next_event`
/// until `POP3_DONE`, then pass the input again. Nothing was taken.
pub const POP3_ERR_INPUT_FULL: pop3_result = -16;

/// `tls-exporter` channel binding (RFC 9266), for TLS 1.3: the 32 bytes of
/// keying material exported with the label `EXPORTER-Channel-Binding` and no
/// context.
pub const POP3_CHANNEL_BINDING_TLS_EXPORTER: u32 = 1;
/// `tls-server-end-point` channel binding (RFC 5929), for TLS 1.2: the hash
/// of the server's certificate with the hash of its signature algorithm
/// (SHA-256 in place of MD5 and SHA-1).
pub const POP3_CHANNEL_BINDING_TLS_SERVER_END_POINT: u32 = 2;
/// `tls-server-end-point` channel binding computed by the client from the
/// server's end-entity certificate, given as the DER bytes received in the
/// handshake: the client picks the hash (RFC 5929's rule, the same as every
/// driver of this library), so the application need not.
pub const POP3_CHANNEL_BINDING_SERVER_CERTIFICATE: u32 = 3;

/// The code for a usage error of the core.
pub(crate) fn usage_code(error: &UsageError) -> pop3_result {
    match error {
        UsageError::WrongState { .. } => POP3_ERR_WRONG_STATE,
        UsageError::InvalidArgument(_) => POP3_ERR_INVALID_ARGUMENT,
        UsageError::PlaintextCredentials => POP3_ERR_PLAINTEXT_CREDENTIALS,
        UsageError::NoApopTimestamp => POP3_ERR_NO_APOP_TIMESTAMP,
        UsageError::Sasl(_) => POP3_ERR_SASL,
        UsageError::Closed => POP3_ERR_CLOSED,
        UsageError::Failed(_) => POP3_ERR_PROTOCOL,
        UsageError::Cancelled => POP3_ERR_CANCELLED,
        UsageError::StlsUnavailable => POP3_ERR_STLS_UNAVAILABLE,
        _ => POP3_ERR_USAGE,
    }
}

/// The static, NUL-terminated description of a code.
pub(crate) fn message(code: pop3_result) -> &'static [u8] {
    match code {
        POP3_OK => b"success\0",
        POP3_DONE => b"nothing to report now\0",
        POP3_ERR_NULL => b"a required pointer argument was NULL\0",
        POP3_ERR_INVALID_ARGUMENT => b"invalid argument\0",
        POP3_ERR_WRONG_STATE => b"the command does not fit the session's state\0",
        POP3_ERR_PLAINTEXT_CREDENTIALS => {
            b"refusing to send credentials over an unencrypted connection\0"
        }
        POP3_ERR_NO_APOP_TIMESTAMP => b"the server's greeting has no APOP timestamp\0",
        POP3_ERR_SASL => b"the SASL mechanism failed\0",
        POP3_ERR_CLOSED => b"the session is over\0",
        POP3_ERR_PROTOCOL => b"the server broke the protocol\0",
        POP3_ERR_CANCELLED => b"not sent: a STLS or login before it failed\0",
        POP3_ERR_STLS_UNAVAILABLE => b"the server does not offer STLS\0",
        POP3_ERR_CALL_ORDER => b"call made out of order\0",
        POP3_ERR_PANIC => b"internal error in the POP3 library\0",
        POP3_ERR_RANDOM => b"the system random number generator failed\0",
        POP3_ERR_USAGE => b"the command was refused\0",
        POP3_ERR_TLS => b"the TLS handshake after STLS failed\0",
        POP3_ERR_INPUT_FULL => b"input refused: handle the pending events first\0",
        _ => b"unknown result code\0",
    }
}

/// `message` as a C string pointer.
pub(crate) fn message_ptr(code: pop3_result) -> *const c_char {
    message(code).as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_is_one_c_string() {
        for code in -20..=2 {
            let text = message(code);
            assert_eq!(text.last(), Some(&0), "code {code}");
            assert_eq!(text.iter().filter(|&&b| b == 0).count(), 1, "code {code}");
        }
    }
}
