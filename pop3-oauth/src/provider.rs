//! What a provider needs: endpoints, scopes, and where its POP3 server is.

/// A provider with built-in settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Preset {
    /// Gmail and Google Workspace.
    Gmail,
    /// Outlook.com and Microsoft 365 (Exchange Online).
    Outlook,
}

impl Preset {
    /// `gmail` or `outlook`, as written in a config file.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Gmail => "gmail",
            Preset::Outlook => "outlook",
        }
    }

    /// The preset called `name` (`gmail`, `outlook`; `google`, `microsoft`,
    /// `office365` and `microsoft365` are accepted too).
    pub fn from_name(name: &str) -> Option<Preset> {
        match name.to_ascii_lowercase().as_str() {
            "gmail" | "google" => Some(Preset::Gmail),
            "outlook" | "microsoft" | "office365" | "microsoft365" => Some(Preset::Outlook),
            _ => None,
        }
    }

    /// The settings of this preset. `tenant` (Microsoft only) defaults to
    /// `common`, which serves personal and work accounts.
    pub fn settings(self) -> ProviderSettings {
        match self {
            Preset::Gmail => ProviderSettings {
                preset: Some(self),
                authorization_endpoint: "https://accounts.google.com/o/oauth2/v2/auth".into(),
                token_endpoint: "https://oauth2.googleapis.com/token".into(),
                device_endpoint: None,
                device_refusal: Some(
                    "Google does not allow the device flow for mail scopes; \
                     run the login where a browser can reach this machine's 127.0.0.1"
                        .into(),
                ),
                scopes: vec!["https://mail.google.com/".into()],
                host: "pop.gmail.com".into(),
                port: 995,
                implicit_tls: true,
                mechanism: "XOAUTH2".into(),
                extra_authorization_parameters: vec![
                    // Without these Google hands out a refresh token on the
                    // first consent only.
                    ("access_type".into(), "offline".into()),
                    ("prompt".into(), "consent".into()),
                ],
            },
            Preset::Outlook => ProviderSettings::outlook_tenant("common"),
        }
    }
}

/// Everything the flows need to know about a provider. Every field may be
/// changed after taking a preset's settings (single-tenant apps, national
/// clouds, other providers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderSettings {
    /// The preset these settings came from, if any.
    pub preset: Option<Preset>,
    /// Where the browser is sent to consent.
    pub authorization_endpoint: String,
    /// Where codes, device codes and refresh tokens are exchanged.
    pub token_endpoint: String,
    /// Where a device code is asked for; `None`: no device flow.
    pub device_endpoint: Option<String>,
    /// Why there is no device flow, in words for the user.
    pub device_refusal: Option<String>,
    /// The scopes asked for.
    pub scopes: Vec<String>,
    /// The POP3 server.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// `true`: TLS from the first byte (port 995).
    pub implicit_tls: bool,
    /// The SASL mechanism that presents the access token.
    pub mechanism: String,
    /// Parameters added to the authorization URL.
    pub extra_authorization_parameters: Vec<(String, String)>,
}

impl ProviderSettings {
    /// Microsoft's endpoints for `tenant` (`common`, `consumers`,
    /// `organizations`, or a tenant's ID or domain).
    pub fn outlook_tenant(tenant: &str) -> ProviderSettings {
        let base = format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0");
        ProviderSettings {
            preset: Some(Preset::Outlook),
            authorization_endpoint: format!("{base}/authorize"),
            token_endpoint: format!("{base}/token"),
            device_endpoint: Some(format!("{base}/devicecode")),
            device_refusal: None,
            scopes: vec![
                "https://outlook.office.com/POP.AccessAsUser.All".into(),
                // Without it Microsoft issues no refresh token.
                "offline_access".into(),
            ],
            host: "outlook.office365.com".into(),
            port: 995,
            implicit_tls: true,
            mechanism: "XOAUTH2".into(),
            extra_authorization_parameters: Vec::new(),
        }
    }

    /// The scopes as one space-separated string.
    pub fn scope(&self) -> String {
        self.scopes.join(" ")
    }
}

/// The application registered with the provider. The project ships none:
/// each user (or packager) registers their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// The client (application) ID.
    pub id: String,
    /// The client secret, for providers that issue one to desktop apps
    /// (Google); not confidential there, but still never printed.
    pub secret: Option<crate::Secret>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_hold_the_published_values() {
        let gmail = Preset::Gmail.settings();
        assert_eq!(gmail.scope(), "https://mail.google.com/");
        assert_eq!((gmail.host.as_str(), gmail.port), ("pop.gmail.com", 995));
        assert!(gmail.device_endpoint.is_none() && gmail.device_refusal.is_some());
        let outlook = Preset::Outlook.settings();
        assert_eq!(
            outlook.scope(),
            "https://outlook.office.com/POP.AccessAsUser.All offline_access"
        );
        assert_eq!(
            outlook.token_endpoint,
            "https://login.microsoftonline.com/common/oauth2/v2.0/token"
        );
        let tenant = ProviderSettings::outlook_tenant("contoso.onmicrosoft.com");
        assert!(tenant
            .device_endpoint
            .is_some_and(|url| url.contains("/contoso.onmicrosoft.com/")));
        assert_eq!(Preset::from_name("Outlook"), Some(Preset::Outlook));
        assert_eq!(Preset::from_name("yahoo"), None);
    }
}
