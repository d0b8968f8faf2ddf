//! Tokens and the token endpoint: exchanging a code, a device code or a
//! refresh token for an access token.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{clean_text, DeadReason, Error};
use crate::http::{HttpClient, Response};
use crate::provider::{Client, ProviderSettings};
use crate::Secret;

/// Seconds since 1970.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// What a token endpoint hands out, as kept in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    /// The bearer token presented to the POP3 server.
    pub access_token: Secret,
    /// When it expires, in seconds since 1970 (`None`: not said).
    pub expires_at: Option<u64>,
    /// The token that gets new access tokens (`None`: none was issued).
    pub refresh_token: Option<Secret>,
    /// The scopes granted, as the endpoint said (or as asked).
    pub scope: Option<String>,
    /// When the access token was received, in seconds since 1970.
    #[serde(default)]
    pub obtained_at: Option<u64>,
}

impl Tokens {
    /// Whether the access token is still good for at least `margin` seconds,
    /// or half its lifetime when that is shorter (a provider handing out
    /// tokens that live less than the margin must not be asked again at
    /// every use). A token without an expiry is taken as good.
    pub fn fresh_for(&self, margin: u64) -> bool {
        let Some(expires_at) = self.expires_at else {
            return true;
        };
        let margin = match self.obtained_at {
            Some(obtained_at) if expires_at > obtained_at => {
                margin.min((expires_at - obtained_at) / 2)
            }
            _ => margin,
        };
        expires_at > now().saturating_add(margin)
    }
}

/// The JSON of a successful answer.
#[derive(Deserialize)]
struct Granted {
    access_token: Secret,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    refresh_token: Option<Secret>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    token_type: Option<String>,
}

/// The JSON of an OAuth error answer.
#[derive(Deserialize)]
pub(crate) struct OAuthErrorBody {
    pub(crate) error: String,
    #[serde(default)]
    pub(crate) error_description: Option<String>,
    #[serde(default)]
    pub(crate) interval: Option<u64>,
}

/// What the token endpoint said: tokens, or an OAuth error code.
pub(crate) enum Answer {
    Granted(Tokens),
    Error { status: u16, body: OAuthErrorBody },
}

pub(crate) fn require_json(response: &Response) -> Result<(), Error> {
    match response.content_type.as_deref() {
        Some("application/json") => Ok(()),
        // Some endpoints label JSON as `text/plain`; the body still has to
        // parse as the JSON expected.
        Some("text/plain") if response.body.first() == Some(&b'{') => Ok(()),
        other => Err(Error::UnexpectedContentType {
            status: response.status,
            content_type: other.map(clean_text),
        }),
    }
}

pub(crate) fn parse_answer(response: &Response, asked_scope: &str) -> Result<Answer, Error> {
    require_json(response)?;
    if response.status == 200 {
        let granted: Granted = serde_json::from_slice(&response.body)
            .map_err(|error| Error::malformed_json(&error))?;
        if let Some(kind) = &granted.token_type {
            if !kind.eq_ignore_ascii_case("bearer") {
                return Err(Error::MalformedAnswer {
                    why: format!("token type {} is not Bearer", clean_text(kind)),
                });
            }
        }
        let lifetime = match granted.expires_in {
            None => None,
            Some(serde_json::Value::Number(number)) => number.as_u64(),
            // Some endpoints send the number as a string.
            Some(serde_json::Value::String(text)) => text.parse().ok(),
            Some(_) => None,
        };
        if granted.access_token.expose().is_empty() {
            return Err(Error::MalformedAnswer {
                why: "the access token is empty".into(),
            });
        }
        return Ok(Answer::Granted(Tokens {
            access_token: granted.access_token,
            expires_at: lifetime.map(|seconds| now().saturating_add(seconds)),
            refresh_token: granted
                .refresh_token
                .filter(|token| !token.expose().is_empty()),
            scope: granted.scope.or_else(|| Some(asked_scope.to_owned())),
            obtained_at: Some(now()),
        }));
    }
    match serde_json::from_slice::<OAuthErrorBody>(&response.body) {
        Ok(body) => Ok(Answer::Error {
            status: response.status,
            body,
        }),
        Err(_) => Err(Error::UnexplainedStatus {
            status: response.status,
        }),
    }
}

/// An OAuth error answer as this crate's error.
pub(crate) fn refused(status: u16, body: OAuthErrorBody) -> Error {
    Error::Refused {
        status,
        error: clean_text(&body.error),
        description: body.error_description.as_deref().map(clean_text),
    }
}

/// Posts a grant to the token endpoint.
pub(crate) fn post_grant(
    http: &HttpClient,
    settings: &ProviderSettings,
    client: &Client,
    grant: &[(&str, &str)],
) -> Result<Answer, Error> {
    let mut form: Vec<(&str, &str)> = grant.to_vec();
    form.push(("client_id", &client.id));
    if let Some(secret) = &client.secret {
        form.push(("client_secret", secret.expose()));
    }
    let response = http.post_form(&settings.token_endpoint, &form)?;
    parse_answer(&response, &settings.scope())
}

/// Exchanges a refresh token. A refresh token the endpoint no longer takes
/// is [`Error::RefreshTokenDead`]; when the answer holds no new refresh
/// token, the one presented is kept.
pub fn refresh(
    http: &HttpClient,
    settings: &ProviderSettings,
    client: &Client,
    refresh_token: &Secret,
) -> Result<Tokens, Error> {
    let scope = settings.scope();
    let answer = post_grant(
        http,
        settings,
        client,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose()),
            ("scope", &scope),
        ],
    )?;
    match answer {
        Answer::Granted(mut tokens) => {
            if tokens.refresh_token.is_none() {
                tokens.refresh_token = Some(refresh_token.clone());
            }
            Ok(tokens)
        }
        Answer::Error { body, .. } if body.error == "invalid_grant" => {
            let description = body.error_description.as_deref().unwrap_or_default();
            let reason = if description.contains("AADSTS700082") {
                DeadReason::Inactive
            } else if description
                .to_ascii_lowercase()
                .contains("expired or revoked")
            {
                DeadReason::ExpiredOrRevoked
            } else {
                DeadReason::InvalidGrant
            };
            Err(Error::RefreshTokenDead {
                reason,
                description: body.error_description.as_deref().map(clean_text),
            })
        }
        Answer::Error { status, body } => Err(refused(status, body)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::HttpError;

    fn json(status: u16, body: &str) -> Response {
        Response {
            status,
            content_type: Some("application/json".into()),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_grant_parses_and_expiry_is_absolute() {
        let answer = parse_answer(
            &json(
                200,
                r#"{"access_token":"at","expires_in":"3599","token_type":"Bearer","refresh_token":"rt"}"#,
            ),
            "s",
        );
        let Ok(Answer::Granted(tokens)) = answer else {
            panic!("not granted");
        };
        assert_eq!(tokens.access_token.expose(), "at");
        assert!(tokens.expires_at.is_some_and(|at| at >= now() + 3598));
        assert_eq!(tokens.scope.as_deref(), Some("s"));
        assert!(tokens.fresh_for(60) && tokens.fresh_for(1700));
        // Half the lifetime is the most margin asked of a token.
        assert!(tokens.fresh_for(4000));
        let near_end = Tokens {
            obtained_at: tokens.obtained_at.map(|at| at - 3500),
            expires_at: tokens.expires_at.map(|at| at - 3500),
            ..tokens.clone()
        };
        assert!(!near_end.fresh_for(300) && near_end.fresh_for(60));
    }

    /// The error a non-200 answer becomes, as the token endpoint's caller sees it.
    fn failure(response: &Response) -> Error {
        match parse_answer(response, "") {
            Ok(Answer::Error { status, body }) => refused(status, body),
            Ok(Answer::Granted(_)) => panic!("granted"),
            Err(error) => error,
        }
    }

    #[test]
    fn provider_outages_are_transient_and_refusals_are_not() {
        let html = |status| Response {
            status,
            content_type: Some("text/html".into()),
            body: b"<html>down</html>".to_vec(),
        };
        for outage in [
            json(503, r#"{"error":"temporarily_unavailable"}"#),
            json(400, r#"{"error":"temporarily_unavailable"}"#),
            json(500, r#"{"error":"server_error"}"#),
            json(429, r#"{"error":"slow"}"#),
            json(503, r#"{"message":"overloaded"}"#),
            html(502),
            html(503),
        ] {
            let error = failure(&outage);
            assert!(error.is_transient(), "{outage:?}: {error:?}");
        }
        for lasting in [
            json(400, r#"{"error":"invalid_client"}"#),
            json(401, r#"{"error":"unauthorized_client"}"#),
            json(400, r#"{"message":"no"}"#),
            html(200),
            html(404),
        ] {
            let error = failure(&lasting);
            assert!(!error.is_transient(), "{lasting:?}: {error:?}");
        }
        assert!(Error::Http(HttpError::Timeout).is_transient());
        assert!(
            Error::Http(HttpError::Io(std::io::ErrorKind::ConnectionRefused.into())).is_transient()
        );
        assert!(!Error::Http(HttpError::Redirect { status: 302 }).is_transient());
        assert!(!Error::Random.is_transient());
        assert!(!Error::NotLoggedIn.is_transient());
    }

    #[test]
    fn bad_answers_are_typed_and_never_quote_the_body() {
        let wrong_type = Response {
            status: 200,
            content_type: Some("text/html".into()),
            body: b"<html>at-secret</html>".to_vec(),
        };
        assert!(matches!(
            parse_answer(&wrong_type, ""),
            Err(Error::UnexpectedContentType { .. })
        ));
        for body in [
            r#"{"access_token":"at-secret","token_type":"mac"}"#,
            r#"{"access_token":""}"#,
            "not json at-secret",
            r#"{"access_token": 5}"#,
        ] {
            let error = parse_answer(&json(200, body), "").err();
            let shown = format!(
                "{error:?} {}",
                error.as_ref().map(ToString::to_string).unwrap_or_default()
            );
            assert!(
                matches!(error, Some(Error::MalformedAnswer { .. })),
                "{body}"
            );
            assert!(!shown.contains("at-secret"), "{shown}");
        }
    }
}
