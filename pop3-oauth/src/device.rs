//! The device authorization grant (RFC 8628): the user enters a short code
//! on another device, this process polls the token endpoint until they have.
//! It needs no browser here, so it works over SSH and on headless machines.

use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::error::{clean_text, Error};
use crate::http::HttpClient;
use crate::provider::{Client, ProviderSettings};
use crate::token::{post_grant, refused, require_json, Answer, Tokens};
use crate::Secret;

/// The wait added after a `slow_down` answer (RFC 8628, section 3.5).
pub const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

/// A device code, waiting for the user.
#[derive(Debug)]
pub struct DeviceAuthorization {
    device_code: Secret,
    /// The code the user types.
    pub user_code: String,
    /// Where they type it.
    pub verification_uri: String,
    /// The provider's own sentence telling the user what to do, if it sent one.
    pub message: Option<String>,
    /// How long to wait between polls.
    pub interval: Duration,
    /// When the code expires.
    pub expires_at: Instant,
}

#[derive(Deserialize)]
struct DeviceAnswer {
    device_code: Secret,
    user_code: String,
    #[serde(alias = "verification_url")]
    verification_uri: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    interval: Option<u64>,
    #[serde(default)]
    message: Option<String>,
}

/// What one poll found.
#[derive(Debug)]
pub enum Poll {
    /// The user has not finished; poll again after [`DeviceAuthorization::interval`].
    Pending,
    /// The endpoint asked to poll less often; the interval has grown.
    SlowDown,
    /// Done.
    Granted(Tokens),
}

impl DeviceAuthorization {
    /// Asks for a device code. Settings without a device endpoint (Google
    /// for mail) give [`Error::DeviceFlowUnavailable`] without any request.
    pub fn start(
        http: &HttpClient,
        settings: &ProviderSettings,
        client: &Client,
    ) -> Result<DeviceAuthorization, Error> {
        let Some(endpoint) = &settings.device_endpoint else {
            return Err(Error::DeviceFlowUnavailable {
                why: settings
                    .device_refusal
                    .clone()
                    .unwrap_or_else(|| "this provider offers no device flow".into()),
            });
        };
        let scope = settings.scope();
        let response = http.post_form(endpoint, &[("client_id", &client.id), ("scope", &scope)])?;
        require_json(&response)?;
        if response.status != 200 {
            return match serde_json::from_slice(&response.body) {
                Ok(body) => Err(refused(response.status, body)),
                Err(_) => Err(Error::UnexplainedStatus {
                    status: response.status,
                }),
            };
        }
        let answer: DeviceAnswer = serde_json::from_slice(&response.body)
            .map_err(|error| Error::malformed_json(&error))?;
        // Polling faster than every second helps nobody; a provider asking
        // for more than a minute is answered every minute at most.
        let interval = Duration::from_secs(answer.interval.unwrap_or(5).clamp(1, 60));
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(900).min(3600));
        Ok(DeviceAuthorization {
            device_code: answer.device_code,
            user_code: clean_text(&answer.user_code),
            verification_uri: clean_text(&answer.verification_uri),
            message: answer.message.as_deref().map(clean_text),
            interval,
            expires_at: Instant::now() + lifetime,
        })
    }

    /// Asks the token endpoint once.
    pub fn poll(
        &mut self,
        http: &HttpClient,
        settings: &ProviderSettings,
        client: &Client,
    ) -> Result<Poll, Error> {
        if Instant::now() >= self.expires_at {
            return Err(Error::DeviceCodeExpired);
        }
        let answer = post_grant(
            http,
            settings,
            client,
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", self.device_code.expose()),
            ],
        )?;
        match answer {
            Answer::Granted(tokens) => Ok(Poll::Granted(tokens)),
            Answer::Error { body, .. } if body.error == "authorization_pending" => {
                Ok(Poll::Pending)
            }
            Answer::Error { body, .. } if body.error == "slow_down" => {
                self.interval = body
                    .interval
                    .map(|seconds| Duration::from_secs(seconds.clamp(1, 60)))
                    .unwrap_or(self.interval + SLOW_DOWN_STEP)
                    .max(self.interval + SLOW_DOWN_STEP)
                    .min(Duration::from_secs(60));
                Ok(Poll::SlowDown)
            }
            Answer::Error { body, .. } if body.error == "expired_token" => {
                Err(Error::DeviceCodeExpired)
            }
            Answer::Error { body, .. }
                if body.error == "access_denied" || body.error == "authorization_declined" =>
            {
                Err(Error::AuthorizationDenied {
                    error: clean_text(&body.error),
                    description: body.error_description.as_deref().map(clean_text),
                })
            }
            Answer::Error { status, body } => Err(refused(status, body)),
        }
    }

    /// Polls until the user is done, the code expires or an error, calling
    /// `sleep` for each wait (`std::thread::sleep` in a program; a test may
    /// record the waits instead).
    pub fn wait(
        &mut self,
        http: &HttpClient,
        settings: &ProviderSettings,
        client: &Client,
        mut sleep: impl FnMut(Duration),
    ) -> Result<Tokens, Error> {
        loop {
            sleep(self.interval);
            match self.poll(http, settings, client)? {
                Poll::Granted(tokens) => return Ok(tokens),
                Poll::Pending | Poll::SlowDown => {}
            }
        }
    }
}
