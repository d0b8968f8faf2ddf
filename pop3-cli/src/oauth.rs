//! OAuth 2.0 accounts: `provider = "gmail" | "outlook"` in the config file,
//! `pop3 oauth login NAME`, `pop3 oauth status`, and the access token a
//! fetch logs in with (refreshed when it is about to expire). The flows,
//! the token files and the refresh lock are `pop3-oauth`'s; this module
//! chooses the words and the exit codes.

use std::path::Path;
use std::process::{Command as Process, Stdio};
use std::time::Duration;

use pop3_oauth::{
    to_store, AuthorizationRequest, Client, DeviceAuthorization, Error as OAuthError, HttpClient,
    Preset, ProviderSettings, Refreshed, Secret as OAuthSecret, TokenStore,
};
use pop3_proto::Secret;

use crate::cli::{AuthName, Cli, OauthCommand, TlsMode};
use crate::config::{Config, Settings};
use crate::error::{Exit, Failure};

/// How long `pop3 oauth login` waits for the browser to come back.
const BROWSER_WAIT: Duration = Duration::from_secs(300);

/// An account of the config file that logs in with OAuth.
pub(crate) struct OAuthAccount {
    name: String,
    settings: ProviderSettings,
    client: Client,
    /// The account's `proxy`, `proxy_password_env` and
    /// `proxy_password_command`: the token endpoint is reached through the
    /// same SOCKS5 proxy as the POP3 server.
    proxy: Option<String>,
    proxy_password_env: Option<String>,
    proxy_password_command: Option<String>,
}

fn text(value: &Option<toml::Spanned<String>>) -> Option<String> {
    value.as_ref().map(|v| v.get_ref().clone())
}

/// The provider's POP3 server, for an account with a `provider` key: host,
/// port, TLS and mechanism to use where the file and the command line say
/// nothing.
pub(crate) fn server_defaults(file: &Settings) -> Option<(String, u16, TlsMode, AuthName)> {
    let preset = Preset::from_name(file.provider.as_ref()?.get_ref())?;
    let settings = preset.settings();
    let tls = if settings.implicit_tls {
        TlsMode::Implicit
    } else {
        TlsMode::Starttls
    };
    let auth = AuthName::try_from(settings.mechanism.to_ascii_lowercase()).ok()?;
    Some((settings.host, settings.port, tls, auth))
}

/// The OAuth settings of account `name`; `None` when it has no `provider`.
pub(crate) fn account(
    name: Option<&str>,
    file: &Settings,
) -> Result<Option<OAuthAccount>, Failure> {
    let Some(provider) = &file.provider else {
        return Ok(None);
    };
    let name = name.ok_or_else(|| {
        Failure::usage("an OAuth account (provider = ...) is used by its name: --account NAME")
    })?;
    let in_account = |why: String| Failure::usage(format!("account {name}: {why}"));
    let mut settings = match provider.get_ref().as_str() {
        "custom" => ProviderSettings {
            preset: None,
            authorization_endpoint: String::new(),
            token_endpoint: String::new(),
            device_endpoint: None,
            device_refusal: None,
            scopes: Vec::new(),
            host: String::new(),
            port: 995,
            implicit_tls: true,
            mechanism: "XOAUTH2".into(),
            extra_authorization_parameters: Vec::new(),
        },
        other => Preset::from_name(other)
            .ok_or_else(|| {
                in_account(format!(
                    "provider {other:?} is not one of gmail, outlook, custom"
                ))
            })?
            .settings(),
    };
    if let Some(tenant) = &file.tenant {
        if settings.preset != Some(Preset::Outlook) {
            return Err(in_account(
                "tenant applies to provider = \"outlook\" only".into(),
            ));
        }
        settings = ProviderSettings::outlook_tenant(tenant.get_ref());
    }
    if let Some(scopes) = &file.scopes {
        settings.scopes = scopes
            .get_ref()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
    }
    if let Some(url) = text(&file.authorization_endpoint) {
        settings.authorization_endpoint = url;
    }
    if let Some(url) = text(&file.token_endpoint) {
        settings.token_endpoint = url;
    }
    if let Some(url) = text(&file.device_endpoint) {
        settings.device_endpoint = Some(url);
        settings.device_refusal = None;
    }
    if settings.token_endpoint.is_empty() || settings.authorization_endpoint.is_empty() {
        return Err(in_account(
            "provider = \"custom\" needs authorization_endpoint and token_endpoint".into(),
        ));
    }
    if settings.scopes.is_empty() {
        return Err(in_account("no scopes to ask for (scopes = \"...\")".into()));
    }
    let id = text(&file.client_id).ok_or_else(|| {
        in_account(
            "an OAuth account needs client_id: the ID of the application you registered \
             with the provider (pop3 ships none; see the README)"
                .into(),
        )
    })?;
    Ok(Some(OAuthAccount {
        name: name.to_owned(),
        settings,
        client: Client {
            id,
            secret: text(&file.client_secret).map(OAuthSecret::new),
        },
        proxy: text(&file.proxy),
        proxy_password_env: text(&file.proxy_password_env),
        proxy_password_command: text(&file.proxy_password_command),
    }))
}

fn store() -> Result<TokenStore, Failure> {
    TokenStore::default_dir()
        .map(TokenStore::new)
        .ok_or_else(|| Failure::usage("nowhere to keep OAuth tokens: set XDG_STATE_HOME or HOME"))
}

fn http() -> Result<HttpClient, Failure> {
    HttpClient::new().map_err(|e| Failure::new(Exit::Tls, format!("TLS for OAuth: {e}")))
}

/// The HTTP client for `account`: through the SOCKS5 proxy the POP3
/// connection uses (`--proxy`, else the account's `proxy`), so that a Tor
/// user's address does not reach the provider directly at the token
/// endpoint. The proxy's password comes from where the POP3 connection
/// takes it.
fn http_for(cli: &Cli, account: &OAuthAccount) -> Result<HttpClient, Failure> {
    let http = http()?;
    let Some(url) = cli.conn.proxy.clone().or_else(|| account.proxy.clone()) else {
        return Ok(http);
    };
    let mut proxy = crate::target::parse_proxy(&url)?;
    let mut conn = cli.conn.clone();
    if conn.proxy_password_env.is_none() && conn.proxy_password_command.is_none() {
        conn.proxy_password_env
            .clone_from(&account.proxy_password_env);
        conn.proxy_password_command
            .clone_from(&account.proxy_password_command);
    }
    proxy.password = crate::target::proxy_password(&conn)?;
    Ok(http.through_proxy(proxy))
}

/// The command that logs `account` in again, exactly as to type it.
fn login_command(cli: &Cli, account: &str) -> String {
    let quoted = |word: &str| {
        if !word.is_empty()
            && word
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"@%+=:,./-_".contains(&b))
        {
            word.to_owned()
        } else {
            format!("'{}'", word.replace('\'', "'\\''"))
        }
    };
    match &cli.config {
        Some(path) => format!(
            "pop3 --config {} oauth login {}",
            quoted(&path.to_string_lossy()),
            quoted(account)
        ),
        None => format!("pop3 oauth login {}", quoted(account)),
    }
}

/// The library's error as the command's: an exit code and one line.
fn failure(cli: &Cli, account: &str, error: &OAuthError) -> Failure {
    let exit = match error {
        OAuthError::RefreshTokenDead { .. } | OAuthError::NotLoggedIn => {
            return Failure::new(
                Exit::NoPerm,
                format!(
                    "account {account}: {error}; log in again with: {}",
                    login_command(cli, account)
                ),
            )
        }
        // The one place a provider outage (5xx, 429, `temporarily_unavailable`,
        // a gateway's HTML page) or a network failure becomes "try later".
        _ if error.is_transient() => Exit::TempFail,
        OAuthError::Http(pop3_oauth::http::HttpError::Tls(_)) => Exit::Tls,
        OAuthError::Http(_)
        | OAuthError::UnexplainedStatus { .. }
        | OAuthError::UnexpectedContentType { .. }
        | OAuthError::MalformedAnswer { .. } => Exit::Unavailable,
        OAuthError::Refused { .. } | OAuthError::AuthorizationDenied { .. } => Exit::NoPerm,
        OAuthError::Storage { .. } | OAuthError::CorruptStore { .. } => Exit::IoErr,
        OAuthError::AuthorizationTimedOut | OAuthError::DeviceCodeExpired => Exit::TempFail,
        OAuthError::DeviceFlowUnavailable { .. } | OAuthError::BadAccountName => Exit::Usage,
        _ => Exit::Software,
    };
    Failure::new(exit, format!("account {account}: OAuth: {error}"))
}

impl OAuthAccount {
    /// An access token for the login, refreshed first if it expires within
    /// five minutes. A rotated refresh token is saved before this returns.
    pub(crate) fn access_token(&self, cli: &Cli) -> Result<Secret<String>, Failure> {
        let store = store()?;
        let (stored, refreshed) = store
            .access_token(
                &self.name,
                &http_for(cli, self)?,
                &self.settings,
                &self.client,
            )
            .map_err(|e| failure(cli, &self.name, &e))?;
        if cli.verbose {
            let left = stored.tokens.expires_at.map_or_else(
                || "no expiry given".to_owned(),
                |at| format!("expires in {} s", at.saturating_sub(pop3_oauth::now())),
            );
            let how = match refreshed {
                Refreshed::No => "stored",
                Refreshed::Yes => "refreshed",
                Refreshed::ByAnother => "refreshed by another process",
            };
            eprintln!("*  OAuth access token for {}: {how}, {left}", self.name);
        }
        Ok(stored.tokens.access_token.into())
    }
}

/// Whether a browser can be opened here: `xdg-open` on the PATH and a
/// graphical session.
fn browser_opener() -> Option<std::path::PathBuf> {
    let graphical = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()));
    if !graphical {
        return None;
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("xdg-open"))
        .find(|path| path.is_file())
}

/// `pop3 oauth ...`.
pub(crate) fn run(cli: &Cli, config: Option<&Config>, what: &OauthCommand) -> Result<(), Failure> {
    let config = config.ok_or_else(|| {
        Failure::usage("OAuth accounts live in the config file ($XDG_CONFIG_HOME/pop3/config.toml or --config)")
    })?;
    match what {
        OauthCommand::Login {
            account: name,
            device,
            no_browser,
        } => {
            let settings = config.settings(Some(name))?;
            let account = account(Some(name), &settings)?.ok_or_else(|| {
                Failure::usage(format!(
                    "account {name} has no provider key (provider = \"gmail\" or \"outlook\")"
                ))
            })?;
            login(cli, &account, *device, *no_browser)
        }
        OauthCommand::Status { accounts } => {
            let names = if accounts.is_empty() {
                config.account_names()
            } else {
                accounts.clone()
            };
            status(cli, config, &names)
        }
    }
}

fn login(cli: &Cli, account: &OAuthAccount, device: bool, no_browser: bool) -> Result<(), Failure> {
    let http = http_for(cli, account)?;
    let store = store()?;
    let fail = |e: OAuthError| failure(cli, &account.name, &e);
    let tokens = if device {
        let mut flow =
            DeviceAuthorization::start(&http, &account.settings, &account.client).map_err(fail)?;
        match &flow.message {
            Some(message) => eprintln!("{message}"),
            None => eprintln!(
                "To sign in, open {} and enter the code {}",
                flow.verification_uri, flow.user_code
            ),
        }
        eprintln!("Waiting for the sign-in to finish...");
        flow.wait(
            &http,
            &account.settings,
            &account.client,
            std::thread::sleep,
        )
        .map_err(fail)?
    } else {
        let request =
            AuthorizationRequest::start(&account.settings, &account.client).map_err(fail)?;
        eprintln!("Open this URL in a browser on this machine to sign in:");
        eprintln!();
        eprintln!("{}", request.url());
        eprintln!();
        let opened = match browser_opener().filter(|_| !no_browser) {
            Some(opener) => Process::new(opener)
                .arg(request.url())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .is_ok(),
            None => false,
        };
        if opened {
            eprintln!("(a browser was started)");
        } else if account.settings.device_endpoint.is_some() {
            eprintln!("No browser on this machine? Run the login again with --device.");
        }
        eprintln!("Waiting for the browser at {} ...", request.redirect_uri());
        request
            .finish(&http, &account.settings, &account.client, BROWSER_WAIT)
            .map_err(fail)?
    };
    if tokens.refresh_token.is_none() {
        eprintln!(
            "pop3: warning: {} issued no refresh token: the login lasts until the access token expires",
            account.settings.token_endpoint
        );
    }
    let path = store
        .save_locked(&account.name, &to_store(&account.settings, tokens))
        .map_err(fail)?;
    eprintln!(
        "Logged in: the token of {} is in {}",
        account.name,
        path.display()
    );
    Ok(())
}

fn status(cli: &Cli, config: &Config, names: &[String]) -> Result<(), Failure> {
    let store = store()?;
    let mut rows = Vec::new();
    for name in names {
        let settings = config.settings(Some(name))?;
        let Some(account) = account(Some(name), &settings)? else {
            continue;
        };
        let path = store.path(name).map_err(|e| failure(cli, name, &e))?;
        let stored = store.load(name).map_err(|e| failure(cli, name, &e))?;
        let now = pop3_oauth::now();
        let mut row = serde_json::Map::new();
        row.insert("account".into(), name.as_str().into());
        row.insert(
            "provider".into(),
            account
                .settings
                .preset
                .map_or("custom", Preset::name)
                .into(),
        );
        row.insert(
            "scopes".into(),
            stored
                .as_ref()
                .and_then(|s| s.tokens.scope.clone())
                .unwrap_or_else(|| account.settings.scope())
                .into(),
        );
        row.insert(
            "token_file".into(),
            path.to_string_lossy().into_owned().into(),
        );
        row.insert("logged_in".into(), stored.is_some().into());
        if let Some(stored) = &stored {
            row.insert(
                "expires_at".into(),
                stored
                    .tokens
                    .expires_at
                    .map_or(serde_json::Value::Null, Into::into),
            );
            row.insert(
                "expires_in".into(),
                stored
                    .tokens
                    .expires_at
                    .map_or(serde_json::Value::Null, |at| {
                        (at as i64 - now as i64).into()
                    }),
            );
            row.insert(
                "refresh_token".into(),
                stored.tokens.refresh_token.is_some().into(),
            );
        }
        rows.push(row);
    }
    if cli.json {
        println!(
            "{}",
            serde_json::Value::Array(rows.into_iter().map(Into::into).collect())
        );
        return Ok(());
    }
    for row in rows {
        let field = |key: &str| row.get(key).cloned().unwrap_or_default();
        let expiry = match field("expires_in").as_i64() {
            _ if field("logged_in") != true => {
                format!(
                    "not logged in (pop3 oauth login {})",
                    field("account").as_str().unwrap_or_default()
                )
            }
            Some(left) if left > 0 => format!("access token expires in {}", duration(left)),
            Some(_) => "access token expired (refreshed at the next fetch)".into(),
            None => "access token expiry unknown".into(),
        };
        let refresh = if field("refresh_token") == true {
            "refresh token kept"
        } else {
            "no refresh token"
        };
        println!(
            "{}: {}, scopes {}; {expiry}; {refresh}; {}",
            field("account").as_str().unwrap_or_default(),
            field("provider").as_str().unwrap_or_default(),
            field("scopes").as_str().unwrap_or_default(),
            Path::new(field("token_file").as_str().unwrap_or_default()).display()
        );
    }
    Ok(())
}

fn duration(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{} h", s / 3600),
    }
}
