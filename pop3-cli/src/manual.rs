//! The man pages: pop3(1), every command and option on one page, and
//! pop3-config(5), every key of the config file.
//!
//! Both are made from what the command itself reads: the options from the
//! clap definition, the config keys from the config parser's own list of
//! fields ([`accepted_keys`]), so neither page can fall behind the code (a
//! test checks that every key has its text).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use clap::{Arg, CommandFactory};
use roff::{bold, italic, roman, Inline, Roff};
use serde::de::{self, Deserialize, Visitor};

use crate::cli::Cli;
use crate::config::Settings;
use crate::error::EXIT_CODES_HELP;

/// The keys the config parser accepts in a table (`[defaults]`,
/// `[accounts.NAME]`), former names included: the field list serde's
/// derived parser works from, asked of the parser itself.
pub(crate) fn accepted_keys() -> &'static [&'static str] {
    /// A deserializer that only records the fields it is asked for.
    struct FieldList<'a>(&'a mut &'static [&'static str]);

    impl<'de> de::Deserializer<'de> for FieldList<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("only a struct's field list is asked for"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("field list recorded"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    // Always an error: the deserializer stops once it has the list.
    let _ = Settings::deserialize(FieldList(&mut fields));
    fields
}

/// What the config page says of the keys that are no option's name.
const KEYS_WITHOUT_OPTION: [(&str, &str, &str); 11] = [
    (
        "url",
        "URL",
        "The server, as on the command line: pop3s://[user@]host[:port] (implicit TLS, \
         port 995) or pop3://[user@]host[:port] (STLS, port 110). It counts as the keys \
         host, port, tls, user and auth, which override it. A colon in the user is part of \
         the user name (recent:alice@gmail.com); no password is ever read from a URL.",
    ),
    (
        "allow_plaintext_auth",
        "true | false",
        "The former name of allow_plaintext_credentials, still read.",
    ),
    (
        "runtime",
        "blocking | tokio | smol",
        "Which of the library's transports runs the session: pop3-blocking (the default), \
         pop3-tokio or pop3-smol. All behave the same; it exists to test them.",
    ),
    (
        "provider",
        "gmail | outlook | custom",
        "Log in with OAuth 2.0 (SASL XOAUTH2) instead of a password. gmail: pop.gmail.com:995, \
         scope https://mail.google.com/; outlook: Outlook.com and Microsoft 365, \
         outlook.office365.com:995, scopes https://outlook.office.com/POP.AccessAsUser.All \
         offline_access; custom: the endpoints and scopes given. host, port, tls and auth \
         override the preset's server. Needs client_id and a user; get the token once with \
         `pop3 oauth login NAME`, after which every fetch refreshes it.",
    ),
    (
        "client_id",
        "ID",
        "OAuth: the client (application) ID of the app you registered with the provider. \
         pop3 ships none.",
    ),
    (
        "client_secret",
        "SECRET",
        "OAuth: the client secret Google issues to desktop apps (Google does not treat it as \
         confidential; it is never printed). Microsoft public clients have none.",
    ),
    (
        "tenant",
        "NAME",
        "OAuth, outlook only: the Microsoft tenant (common, the default; consumers; \
         organizations; or a tenant's ID or domain for a single-tenant app).",
    ),
    (
        "scopes",
        "\"SCOPE ...\"",
        "OAuth: the scopes to ask for, separated by spaces, instead of the provider's.",
    ),
    (
        "authorization_endpoint",
        "URL",
        "OAuth: the authorization endpoint (https; plain http only to a loopback address) \
         instead of the provider's.",
    ),
    (
        "token_endpoint",
        "URL",
        "OAuth: the token endpoint instead of the provider's. Redirects from it are never \
         followed.",
    ),
    (
        "device_endpoint",
        "URL",
        "OAuth: the device authorization endpoint (for `pop3 oauth login --device`) instead of \
         the provider's.",
    ),
];

/// Every option of the command line that a config key may name: the
/// connection's and `fetch`'s.
fn options() -> Vec<Arg> {
    let mut command = Cli::command();
    command.build();
    let mut args: Vec<Arg> = command.get_arguments().cloned().collect();
    if let Some(fetch) = command.find_subcommand("fetch") {
        args.extend(
            fetch
                .get_arguments()
                .filter(|a| !a.is_global_set())
                .cloned(),
        );
    }
    args
}

/// The text of one config key: its value's shape and what it does, or
/// `None` if nothing documents it (a test makes sure that never happens).
pub(crate) fn key_text(key: &str, options: &[Arg]) -> Option<(String, String)> {
    if let Some((_, value, text)) = KEYS_WITHOUT_OPTION.iter().find(|(k, _, _)| *k == key) {
        return Some(((*value).to_owned(), (*text).to_owned()));
    }
    let long = key.replace('_', "-");
    let arg = options
        .iter()
        .find(|a| a.get_long() == Some(long.as_str()) && !a.is_positional())?;
    let value = if arg.get_action().takes_values() {
        let possible: Vec<String> = arg
            .get_possible_values()
            .iter()
            .filter(|p| !p.is_hide_set())
            .map(|p| p.get_name().to_owned())
            .collect();
        // A long list of choices is for the text to give.
        if possible.is_empty() || possible.len() > 4 {
            arg.get_value_names()
                .and_then(|names| names.first())
                .map_or_else(|| "VALUE".to_owned(), |name| name.as_str().to_owned())
        } else {
            possible.join(" | ")
        }
    } else {
        "true | false".to_owned()
    };
    let help = arg
        .get_long_help()
        .or_else(|| arg.get_help())
        .map(ToString::to_string)
        .unwrap_or_default();
    Some((value, format!("{} Option: --{long}.", sentence(&help))))
}

/// `text` ending with a full stop.
fn sentence(text: &str) -> String {
    let text = text.trim_end();
    if text.ends_with('.') {
        text.to_owned()
    } else {
        format!("{text}.")
    }
}

/// One option as a `.TP` item: `--long VALUE` (or `-s, --long`), then its
/// help and, for a choice, the choices.
fn option_item(roff: &mut Roff, arg: &Arg) {
    let mut head: Vec<Inline> = Vec::new();
    if let Some(short) = arg.get_short() {
        head.push(bold(format!("-{short}")));
        head.push(roman(", "));
    }
    match arg.get_long() {
        Some(long) => head.push(bold(format!("--{long}"))),
        None => {
            let name = arg
                .get_value_names()
                .and_then(|names| names.first())
                .map_or_else(|| arg.get_id().to_string(), |n| n.to_string());
            head.push(italic(name.to_uppercase()));
        }
    }
    if arg.get_long().is_some() && arg.get_action().takes_values() {
        if let Some(name) = arg.get_value_names().and_then(|names| names.first()) {
            // As clap_mangen writes the options above it.
            head.push(roman(" <"));
            head.push(italic(name.as_str()));
            head.push(roman(">"));
        }
    }
    roff.control("TP", []);
    roff.text(head);
    if let Some(help) = arg.get_long_help().or_else(|| arg.get_help()) {
        let help = help.to_string().replace("\n\n", " ").replace('\n', " ");
        roff.text([roman(sentence(&help))]);
    }
    let possible: Vec<String> = arg
        .get_possible_values()
        .iter()
        .filter(|p| !p.is_hide_set())
        .map(|p| match p.get_help() {
            Some(help) => format!("{}: {help}", p.get_name()),
            None => p.get_name().to_owned(),
        })
        .collect();
    if !possible.is_empty() && arg.get_long() != Some("tls") && arg.get_long() != Some("trust") {
        roff.text([roman(format!("One of: {}.", possible.join("; ")))]);
    }
}

/// Text with blank lines as paragraphs.
fn paragraphs(roff: &mut Roff, text: &str) {
    for (i, paragraph) in text.split("\n\n").enumerate() {
        if i > 0 {
            roff.control("PP", []);
        }
        roff.text([roman(paragraph.replace('\n', " "))]);
    }
}

/// The COMMANDS section: each command (and `generate`'s), its usage, what
/// it does and its own options.
fn commands_section(roff: &mut Roff, command: &clap::Command, path: &str) {
    // `help` repeats what the page says already.
    let shown = command
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help");
    for sub in shown {
        let name = format!("{path} {}", sub.get_name());
        if sub.has_subcommands() {
            commands_section(roff, sub, &name);
            continue;
        }
        roff.control("SS", [name.as_str()]);
        let mut usage = sub.clone().bin_name(&name);
        let usage = usage.render_usage().to_string();
        let usage = usage.trim_start_matches("Usage: ");
        roff.control("nf", []).text([bold(usage)]).control("fi", []);
        roff.control("PP", []);
        if let Some(about) = sub.get_long_about().or_else(|| sub.get_about()) {
            paragraphs(roff, &about.to_string());
        }
        let own: Vec<&Arg> = sub
            .get_arguments()
            .filter(|a| !a.is_hide_set() && !a.is_global_set())
            .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
            .collect();
        if !own.is_empty() {
            roff.control("RS", []);
            for arg in own {
                option_item(roff, arg);
            }
            roff.control("RE", []);
        }
    }
}

/// pop3(1): the command, its options, and every command with its own.
pub(crate) fn pop3_page() -> io::Result<Vec<u8>> {
    let mut command = Cli::command();
    command.build();
    let man = clap_mangen::Man::new(command.clone());
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    let mut roff = Roff::new();
    roff.control("SH", ["COMMANDS"]);
    commands_section(&mut roff, &command, "pop3");
    roff.control("SH", ["FILES"]);
    for (file, what) in [
        (
            "$XDG_CONFIG_HOME/pop3/config.toml (~/.config/pop3/config.toml)",
            "The accounts and settings; see pop3-config(5).",
        ),
        (
            "$XDG_STATE_HOME/pop3/ (~/.local/state/pop3/)",
            "What each account fetched into an MDA, and the server's LOGIN-DELAY.",
        ),
        (
            "DIR/pop3-state/, FILE.pop3-state/",
            "What each account fetched into the Maildir DIR or the mbox FILE.",
        ),
    ] {
        roff.control("TP", [])
            .text([italic(file)])
            .text([roman(what)]);
    }
    roff.control("SH", ["EXIT STATUS"]);
    roff.control("nf", []);
    for line in EXIT_CODES_HELP.lines() {
        roff.text([roman(line)]);
    }
    roff.control("fi", []);
    roff.control("SH", ["SEE ALSO"]);
    roff.text([bold("pop3-config"), roman("(5)")]);
    roff.to_writer(&mut out)?;
    Ok(out)
}

/// pop3-config(5): the file, its tables and every key.
pub(crate) fn config_page() -> Vec<u8> {
    let version = env!("CARGO_PKG_VERSION");
    let source = format!("pop3 {version}");
    let mut roff = Roff::new();
    roff.control("TH", ["pop3-config", "5", "", source.as_str(), ""]);
    roff.control("SH", ["NAME"]);
    roff.text([roman("pop3-config - the accounts of pop3(1)")]);
    roff.control("SH", ["SYNOPSIS"]);
    roff.text([italic(
        "$XDG_CONFIG_HOME/pop3/config.toml (~/.config/pop3/config.toml), or --config FILE",
    )]);
    roff.control("SH", ["DESCRIPTION"]);
    paragraphs(
        &mut roff,
        "A TOML file of tables: [defaults], then one [accounts.NAME] per account. An \
         account's table is laid over [defaults], and the options on the command line over \
         both (a URL or --host there replaces the file's server). pop3 fetch with no server \
         fetches every account in the order of the file; pop3 fetch NAME... fetches those; \
         pop3 --account NAME COMMAND uses one.\n\n\
         Every key is a long option of the command line with - written _; text is \
         written in quotes (\"~/Mail\"), numbers and true or false without. No key holds a \
         password (use password_env or password_command). Paths may start with ~/. An \
         unknown key, a value of the wrong type or a bad URL is reported with the file, the \
         line and the key, and nothing connects (exit 64).\n\n\
         The file names commands pop3 runs (password_command, mda, filter), so pop3 refuses \
         a file that belongs to another user than you or root, or that its group or others \
         may write (chmod go-w FILE).",
    );
    roff.control("SH", ["EXAMPLE"]);
    roff.control("nf", []);
    for line in [
        "[defaults]",
        "ca_file = \"~/.config/pop3/ca.pem\"",
        "timeout = 60",
        "",
        "[accounts.work]",
        "url = \"pop3s://alice@pop.example.org\"",
        "password_command = \"pass show mail/work\"",
        "maildir = \"~/Mail/work\"",
        "delete = true",
        "",
        "[accounts.gmail]",
        "url = \"pop3s://recent:alice@gmail.com@pop.gmail.com\"",
        "password_env = \"GMAIL_APP_PASSWORD\"",
        "mbox = \"~/Mail/gmail.mbox\"",
    ] {
        roff.text([roman(line)]);
    }
    roff.control("fi", []);
    roff.control("SH", ["KEYS"]);
    let options = options();
    for key in accepted_keys() {
        let (value, text) = key_text(key, &options)
            .unwrap_or_else(|| ("VALUE".to_owned(), "See pop3(1).".to_owned()));
        roff.control("TP", []);
        roff.text([bold(*key), roman(" = "), italic(value)]);
        roff.text([roman(text.replace("\n\n", " ").replace('\n', " "))]);
    }
    roff.control("SH", ["SEE ALSO"]);
    roff.text([bold("pop3"), roman("(1)")]);
    roff.to_roff().into_bytes()
}

/// The pages and where each goes under a man directory.
pub(crate) fn pages() -> io::Result<Vec<(PathBuf, Vec<u8>)>> {
    Ok(vec![
        (PathBuf::from("man1").join("pop3.1"), pop3_page()?),
        (PathBuf::from("man5").join("pop3-config.5"), config_page()),
    ])
}

/// Writes every page under `dir` (`man1/pop3.1`, `man5/pop3-config.5`),
/// creating the directories; returns the files written.
pub(crate) fn write_pages(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (relative, page) in pages()? {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&path, page)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_the_parser_accepts_is_documented() {
        let keys = accepted_keys();
        // The probe found the parser's list, former names included.
        for key in ["url", "maildir", "tls_server_name", "allow_plaintext_auth"] {
            assert!(keys.contains(&key), "{key} in {keys:?}");
        }
        let options = options();
        for key in keys {
            let (value, text) = key_text(key, &options).unwrap_or_else(|| {
                panic!("config key {key} has no option of its name and no text of its own")
            });
            assert!(
                !value.is_empty() && text.len() > 20,
                "{key}: {value} {text}"
            );
        }
        let page = String::from_utf8(config_page()).expect("UTF-8");
        for key in keys {
            let roffed = key.replace('_', "\\_");
            assert!(
                page.contains(&format!("\\fB{key}\\fR")) || page.contains(&roffed),
                "{key} on the page"
            );
        }
        // No text of its own for a key the parser no longer accepts.
        for (key, _, _) in KEYS_WITHOUT_OPTION {
            assert!(keys.contains(&key), "{key} is documented but not accepted");
        }
    }

    #[test]
    fn the_command_page_has_every_command_and_names_no_missing_page() {
        let page = String::from_utf8(pop3_page().expect("renders")).expect("UTF-8");
        for needle in [
            ".SS \"pop3 fetch\"",
            ".SS \"pop3 generate man\"",
            "max\\-size",
            "tls\\-server\\-name",
            "EXIT STATUS",
            "pop3\\-config",
        ] {
            assert!(page.contains(needle), "{needle}");
        }
        assert!(!page.contains("pop3-fetch(1)") && !page.contains("pop3\\-fetch"));
    }
}
