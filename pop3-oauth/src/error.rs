//! The crate's error. No variant holds a token, a code or a secret; the
//! texts taken from a provider's answer are cut short and cleaned of
//! control characters.

use std::path::PathBuf;

use crate::http::HttpError;

/// What went wrong getting, refreshing or storing a token.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Talking to an endpoint failed.
    Http(HttpError),
    /// The endpoint answered with something other than JSON.
    UnexpectedContentType {
        /// The HTTP status.
        status: u16,
        /// The media type it sent, if any.
        content_type: Option<String>,
    },
    /// The JSON answer lacks a field or has the wrong shape.
    MalformedAnswer {
        /// What was wrong.
        why: String,
    },
    /// The endpoint answered an error status with a JSON body that is not
    /// an OAuth error (a gateway's own `503` page in JSON, for example).
    UnexplainedStatus {
        /// The HTTP status.
        status: u16,
    },
    /// The endpoint refused with an OAuth error other than the ones below.
    Refused {
        /// The HTTP status.
        status: u16,
        /// The `error` code (`invalid_client`, `unauthorized_client`...).
        error: String,
        /// The `error_description`, shortened.
        description: Option<String>,
    },
    /// The refresh token no longer works: the user must log in again.
    RefreshTokenDead {
        /// Why, when the provider says.
        reason: DeadReason,
        /// The `error_description`, shortened.
        description: Option<String>,
    },
    /// Nothing is stored for this account, or what is stored has expired
    /// and holds no refresh token.
    NotLoggedIn,
    /// The user (or the provider) refused the consent.
    AuthorizationDenied {
        /// The `error` code of the redirect.
        error: String,
        /// The `error_description`, shortened.
        description: Option<String>,
    },
    /// Listening for the browser on 127.0.0.1 failed.
    Loopback(std::io::Error),
    /// No browser came back before the deadline.
    AuthorizationTimedOut,
    /// The provider offers no device flow for these settings.
    DeviceFlowUnavailable {
        /// Why, in words.
        why: String,
    },
    /// The device code expired before the user entered it.
    DeviceCodeExpired,
    /// The token store could not be read or written.
    Storage {
        /// The file or directory.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// Another process held the account's refresh lock for longer than
    /// the wait allowed.
    LockTimedOut {
        /// The lock file.
        path: PathBuf,
    },
    /// The stored token file is not one this crate wrote.
    CorruptStore {
        /// The file.
        path: PathBuf,
    },
    /// The account name cannot name a file.
    BadAccountName,
    /// The operating system's random generator failed.
    Random,
}

/// Why a refresh token is dead, as far as the provider's answer tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeadReason {
    /// `invalid_grant` with nothing more specific.
    InvalidGrant,
    /// Microsoft `AADSTS700082`: unused for 90 days.
    Inactive,
    /// Google's "expired or revoked", which is what an app in test mode
    /// gets after 7 days.
    ExpiredOrRevoked,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let described =
            |f: &mut std::fmt::Formatter<'_>, description: &Option<String>| match description {
                Some(text) => write!(f, ": {text}"),
                None => Ok(()),
            };
        match self {
            Error::Http(error) => write!(f, "{error}"),
            Error::UnexpectedContentType {
                status,
                content_type,
            } => write!(
                f,
                "the endpoint answered HTTP {status} with {} instead of JSON",
                content_type.as_deref().unwrap_or("no content type")
            ),
            Error::MalformedAnswer { why } => write!(f, "malformed answer from the endpoint: {why}"),
            Error::UnexplainedStatus { status } => {
                write!(f, "the endpoint answered HTTP {status} without an OAuth error")
            }
            Error::Refused {
                status,
                error,
                description,
            } => {
                write!(f, "the endpoint refused (HTTP {status}, {error})")?;
                described(f, description)
            }
            Error::RefreshTokenDead {
                reason,
                description: _,
            } => f.write_str(match reason {
                DeadReason::InvalidGrant => "the refresh token is no longer valid",
                DeadReason::Inactive => {
                    "the refresh token expired after 90 days without use (AADSTS700082)"
                }
                DeadReason::ExpiredOrRevoked => {
                    "the refresh token expired or was revoked (an app in Google's testing mode gets 7 days)"
                }
            }),
            Error::NotLoggedIn => f.write_str("no usable token is stored for this account"),
            Error::AuthorizationDenied { error, description } => {
                write!(f, "the authorization was refused ({error})")?;
                described(f, description)
            }
            Error::Loopback(error) => write!(f, "listening on 127.0.0.1 for the browser: {error}"),
            Error::AuthorizationTimedOut => {
                f.write_str("no browser came back to the loopback redirect in time")
            }
            Error::DeviceFlowUnavailable { why } => f.write_str(why),
            Error::DeviceCodeExpired => {
                f.write_str("the device code expired before the sign-in was completed")
            }
            Error::Storage { path, source } => write!(f, "{}: {source}", path.display()),
            Error::LockTimedOut { path } => write!(
                f,
                "{}: another process held the refresh lock too long",
                path.display()
            ),
            Error::CorruptStore { path } => {
                write!(f, "{}: not a token file this program wrote", path.display())
            }
            Error::BadAccountName => f.write_str("the account name cannot name a token file"),
            Error::Random => f.write_str("the system's random generator failed"),
        }
    }
}

/// Whether an HTTP status says "the provider is in trouble now": too many
/// requests, or any server error (5xx).
fn status_is_transient(status: u16) -> bool {
    status == 429 || (500..600).contains(&status)
}

impl Error {
    /// An answer that is not the JSON it should be. serde_json's message may
    /// quote a value (a token, a code): only its kind and position are kept.
    pub(crate) fn malformed_json(error: &serde_json::Error) -> Error {
        Error::MalformedAnswer {
            why: format!(
                "{:?} JSON at line {} column {}",
                error.classify(),
                error.line(),
                error.column()
            ),
        }
    }

    /// Whether trying the same thing again later may work without anyone
    /// changing anything: the provider is down or overloaded (`5xx`, `429`,
    /// the OAuth errors `temporarily_unavailable` and `server_error`, a
    /// gateway's HTML error page), or the network failed or timed out.
    /// Refusals, dead refresh tokens, bad configuration, TLS failures and
    /// local storage faults are not transient: retrying them changes
    /// nothing.
    pub fn is_transient(&self) -> bool {
        use crate::http::HttpError;
        match self {
            Error::Http(HttpError::Timeout | HttpError::Io(_) | HttpError::Connect { .. }) => true,
            Error::Http(_) => false,
            Error::UnexpectedContentType { status, .. } | Error::UnexplainedStatus { status } => {
                status_is_transient(*status)
            }
            // The holder finishes or dies in the end; nothing needs changing.
            Error::LockTimedOut { .. } => true,
            Error::Refused { status, error, .. } => {
                matches!(error.as_str(), "temporarily_unavailable" | "server_error")
                    || status_is_transient(*status)
            }
            _ => false,
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Http(error) => Some(error),
            Error::Storage { source, .. } => Some(source),
            Error::Loopback(error) => Some(error),
            _ => None,
        }
    }
}

impl From<HttpError> for Error {
    fn from(error: HttpError) -> Error {
        Error::Http(error)
    }
}

/// A provider's text made safe to show, by the core's rule for server
/// text (control, bidirectional-override and invisible characters
/// replaced, see [`pop3_proto::Text::is_unsafe_char`]), then cut to 300
/// characters.
pub(crate) fn clean_text(text: &str) -> String {
    let safe = pop3_proto::Text::sanitize_str(text).into_string();
    if safe.chars().count() <= 300 {
        return safe;
    }
    let mut out: String = safe.chars().take(300).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_text_loses_what_could_disguise_it() {
        let shown = clean_text("go to https://micro\u{202E}moc.tfos\u{200B}\u{2066}x\ny");
        assert!(
            !shown.contains(['\u{202E}', '\u{200B}', '\u{2066}', '\n']),
            "{shown:?}"
        );
        assert!(shown.starts_with("go to https://micro"));
        let long = clean_text(&"a".repeat(400));
        assert_eq!(long.chars().count(), 301);
        assert!(long.ends_with('…'));
        assert_eq!(clean_text("ABCD-EFGH"), "ABCD-EFGH");
    }
}
