//! The values that POP3 replies carry.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::num::NonZeroU32;

use crate::sasl::TokenRefusal;
use crate::Text;

/// A message number: a positive integer naming a message for this session (RFC 1939).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MsgNum(NonZeroU32);

impl MsgNum {
    /// Returns `None` for 0, which is never a valid message number.
    pub const fn new(n: u32) -> Option<MsgNum> {
        match NonZeroU32::new(n) {
            Some(n) => Some(MsgNum(n)),
            None => None,
        }
    }

    /// The number as an integer.
    pub const fn get(self) -> u32 {
        self.0.get()
    }
}

impl fmt::Debug for MsgNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

impl fmt::Display for MsgNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl TryFrom<u32> for MsgNum {
    type Error = crate::UsageError;
    fn try_from(n: u32) -> Result<Self, Self::Error> {
        MsgNum::new(n).ok_or(crate::UsageError::InvalidArgument("message number 0"))
    }
}

/// The server's greeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeting {
    /// The greeting text after `+OK`, sanitised.
    pub text: Text,
    /// The APOP timestamp (`<...@...>`, angle brackets included) when the greeting
    /// carries a valid one.
    pub apop_timestamp: Option<String>,
}

/// The reply to `STAT`: the drop listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Number of messages in the maildrop (not counting messages marked deleted).
    pub count: u32,
    /// Size of the maildrop in octets.
    pub size: u64,
}

/// One scan listing from `LIST`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListEntry {
    /// The message.
    pub msg: MsgNum,
    /// Its size in octets, as the server counts them (CRLF line endings).
    pub size: u64,
}

/// One unique-id listing from `UIDL`.
///
/// # A UID is server data
///
/// The server chooses the UID, and RFC 1939 allows any printable ASCII in
/// it: `../../.bashrc`, `a/b`, `..` and `con` are all valid UIDs. Never use
/// one as a file name or a path component as it is. Encode it first, so that
/// every UID maps to a distinct, harmless name: hex, as below, or a hash of it
/// (the `pop3` command keeps a hash of the account and the UID in its file
/// names).
///
/// ```
/// use pop3_proto::{MsgNum, UidlEntry};
///
/// /// A file name for the message: only `0-9a-f`, and one per UID.
/// fn file_name(entry: &UidlEntry) -> String {
///     let hex: String = entry.uid.bytes().map(|b| format!("{b:02x}")).collect();
///     format!("{hex}.eml")
/// }
///
/// let hostile = UidlEntry { msg: MsgNum::new(1).unwrap(), uid: "../../.bashrc".into() };
/// assert_eq!(file_name(&hostile), "2e2e2f2e2e2f2e626173687263.eml");
/// ```
///
/// A UID is at most 70 octets, so its hex form (140 characters) fits in a
/// file name on every common file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UidlEntry {
    /// The message.
    pub msg: MsgNum,
    /// Its unique id: 1 to 70 characters in 0x21..=0x7E (RFC 1939).
    pub uid: String,
}

/// One language from the `LANG` listing (RFC 6856).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Language {
    /// The language tag, such as `en` or `de`.
    pub tag: String,
    /// The server's description, sanitised.
    pub description: Text,
}

/// An extended response code (RFC 2449 section 8, RFC 3206, RFC 6856).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ResponseCode {
    /// `IN-USE`: the maildrop is locked by another session.
    InUse,
    /// `LOGIN-DELAY`: logged in too recently.
    LoginDelay,
    /// `SYS/TEMP`: a temporary system problem; trying again later may work.
    SysTemp,
    /// `SYS/PERM`: a permanent system problem.
    SysPerm,
    /// `AUTH`: the credentials are wrong (not a system problem).
    Auth,
    /// `UTF8`: the command needs UTF-8 mode (RFC 6856).
    Utf8,
    /// A code this library does not know, upper-cased, kept as sent (sanitised).
    Other(String),
}

impl ResponseCode {
    /// Parses the text between the brackets, case-insensitively.
    pub fn from_name(name: &str) -> ResponseCode {
        let known = [
            ("IN-USE", ResponseCode::InUse),
            ("LOGIN-DELAY", ResponseCode::LoginDelay),
            ("SYS/TEMP", ResponseCode::SysTemp),
            ("SYS/PERM", ResponseCode::SysPerm),
            ("AUTH", ResponseCode::Auth),
            ("UTF8", ResponseCode::Utf8),
        ];
        for (text, code) in known {
            if name.eq_ignore_ascii_case(text) {
                return code;
            }
        }
        ResponseCode::Other(name.to_ascii_uppercase())
    }

    /// Whether the failure is temporary (`IN-USE`, `LOGIN-DELAY`, `SYS/TEMP`).
    pub fn is_temporary(&self) -> bool {
        matches!(
            self,
            ResponseCode::InUse | ResponseCode::LoginDelay | ResponseCode::SysTemp
        )
    }
}

/// The code as the RFCs spell it (`SYS/TEMP`, `IN-USE`, ...).
impl fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResponseCode::InUse => "IN-USE",
            ResponseCode::LoginDelay => "LOGIN-DELAY",
            ResponseCode::SysTemp => "SYS/TEMP",
            ResponseCode::SysPerm => "SYS/PERM",
            ResponseCode::Auth => "AUTH",
            ResponseCode::Utf8 => "UTF8",
            ResponseCode::Other(name) => name,
        })
    }
}

/// A `-ERR` reply: the server refused a command.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerError {
    /// The response code in brackets at the start of the text, if any.
    pub code: Option<ResponseCode>,
    /// The rest of the text, sanitised.
    pub text: Text,
    /// For an `XOAUTH2` / `OAUTHBEARER` login: why the token was refused, from
    /// the JSON report the server sent before its `-ERR` (Gmail does; see
    /// [`TokenRefusal`]).
    /// Boxed: it is rare, and a `ServerError` travels inside every error.
    pub token_refusal: Option<Box<TokenRefusal>>,
    /// The refused command was a login step (`USER`, `PASS`, `APOP` or
    /// `AUTH`, sent alone or by a login operation). Many servers refuse a bad
    /// password with no response code at all (Microsoft's:
    /// `-ERR Logon failure: unknown user name or bad password.`), so this,
    /// not the code, is what tells a refused login from other refusals; see
    /// [`ServerError::is_authentication_refusal`].
    pub during_login: bool,
}

impl ServerError {
    /// A refusal with this code and text.
    ///
    /// ```
    /// use pop3_proto::{ResponseCode, ServerError, Text};
    /// let busy = ServerError::new(Some(ResponseCode::InUse), Text::sanitize(b"mailbox locked"));
    /// assert_eq!(busy.to_string(), "server refused: [IN-USE] mailbox locked");
    /// ```
    pub fn new(code: Option<ResponseCode>, text: Text) -> ServerError {
        ServerError {
            code,
            text,
            token_refusal: None,
            during_login: false,
        }
    }

    /// Whether the server refused the credentials (or the login as such):
    /// an `[AUTH]` code (RFC 3206), or a login step refused without a code
    /// or with one this library does not know. A temporary code (`[IN-USE]`,
    /// `[LOGIN-DELAY]`, `[SYS/TEMP]`) or `[SYS/PERM]` says the credentials
    /// were not the problem, so those are not authentication refusals.
    ///
    /// ```
    /// use pop3_proto::{ResponseCode, ServerError, Text};
    /// let mut refused = ServerError::new(None, Text::sanitize(b"Logon failure"));
    /// assert!(!refused.is_authentication_refusal()); // not known to be a login step
    /// refused.during_login = true;
    /// assert!(refused.is_authentication_refusal());
    /// let mut busy = ServerError::new(Some(ResponseCode::InUse), Text::sanitize(b"locked"));
    /// busy.during_login = true;
    /// assert!(!busy.is_authentication_refusal() && busy.is_temporary());
    /// ```
    pub fn is_authentication_refusal(&self) -> bool {
        match &self.code {
            Some(ResponseCode::Auth) => true,
            None | Some(ResponseCode::Other(_)) => self.during_login,
            Some(_) => false,
        }
    }

    /// Whether the server says to try again later: a temporary response
    /// code (`[IN-USE]`, `[LOGIN-DELAY]`, `[SYS/TEMP]`; see
    /// [`ResponseCode::is_temporary`]).
    pub fn is_temporary(&self) -> bool {
        self.code.as_ref().is_some_and(ResponseCode::is_temporary)
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "server refused: [{code}] {}", self.text)?,
            None => write!(f, "server refused: {}", self.text)?,
        }
        match &self.token_refusal {
            Some(refusal) => write!(f, ": {refusal}"),
            None => Ok(()),
        }
    }
}

/// One capability from `CAPA` (RFC 2449).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Capability {
    /// `TOP`
    Top,
    /// `USER`: USER/PASS login is available.
    User,
    /// `SASL` with its mechanism names (upper-cased).
    Sasl(Vec<String>),
    /// `RESP-CODES`: `-ERR` replies may carry response codes.
    RespCodes,
    /// `AUTH-RESP-CODE` (RFC 3206).
    AuthRespCode,
    /// `LOGIN-DELAY seconds [USER]`.
    LoginDelay {
        /// Minimum seconds between logins.
        seconds: u64,
        /// The value may change after login.
        per_user: bool,
    },
    /// `PIPELINING`: several commands may be sent without waiting.
    Pipelining,
    /// `EXPIRE days|NEVER [USER]`.
    Expire {
        /// Days the server keeps retrieved mail; `None` for `NEVER`.
        days: Option<u64>,
        /// The value may change after login.
        per_user: bool,
    },
    /// `UIDL`
    Uidl,
    /// `IMPLEMENTATION text`.
    Implementation(Text),
    /// `STLS` (RFC 2595).
    Stls,
    /// `UTF8 [USER]` (RFC 6856).
    Utf8 {
        /// The server accepts UTF-8 user names and passwords.
        user: bool,
    },
    /// `LANG` (RFC 6856).
    Lang,
    /// A capability this library does not know (or a known one with arguments it
    /// cannot read), kept with its arguments, sanitised.
    Other {
        /// The capability name, upper-cased.
        name: String,
        /// Its arguments.
        args: Vec<String>,
    },
}

/// The capability as a `CAPA` line writes it: `SASL PLAIN LOGIN`,
/// `LOGIN-DELAY 900 USER`, `EXPIRE NEVER`, ... (unknown capabilities as they
/// came, sanitised).
///
/// ```
/// use pop3_proto::Capability;
/// let delay = Capability::LoginDelay { seconds: 900, per_user: true };
/// assert_eq!(delay.to_string(), "LOGIN-DELAY 900 USER");
/// assert_eq!(Capability::Sasl(vec!["PLAIN".into()]).to_string(), "SASL PLAIN");
/// ```
impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let user = |per_user: bool| if per_user { " USER" } else { "" };
        let words = |f: &mut fmt::Formatter<'_>, name: &str, args: &[String]| {
            f.write_str(name)?;
            args.iter().try_for_each(|a| write!(f, " {a}"))
        };
        match self {
            Capability::Top => f.write_str("TOP"),
            Capability::User => f.write_str("USER"),
            Capability::Sasl(mechanisms) => words(f, "SASL", mechanisms),
            Capability::RespCodes => f.write_str("RESP-CODES"),
            Capability::AuthRespCode => f.write_str("AUTH-RESP-CODE"),
            Capability::LoginDelay { seconds, per_user } => {
                write!(f, "LOGIN-DELAY {seconds}{}", user(*per_user))
            }
            Capability::Pipelining => f.write_str("PIPELINING"),
            Capability::Expire { days, per_user } => match days {
                Some(days) => write!(f, "EXPIRE {days}{}", user(*per_user)),
                None => write!(f, "EXPIRE NEVER{}", user(*per_user)),
            },
            Capability::Uidl => f.write_str("UIDL"),
            Capability::Implementation(text) => write!(f, "IMPLEMENTATION {text}"),
            Capability::Stls => f.write_str("STLS"),
            Capability::Utf8 { user: u } => write!(f, "UTF8{}", user(*u)),
            Capability::Lang => f.write_str("LANG"),
            Capability::Other { name, args } => words(f, name, args),
        }
    }
}

/// The capabilities a server listed in reply to `CAPA`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// Every capability, in the order the server listed them.
    pub list: Vec<Capability>,
}

impl Capabilities {
    /// `PIPELINING` is listed.
    pub fn pipelining(&self) -> bool {
        self.list.contains(&Capability::Pipelining)
    }

    /// `STLS` is listed.
    pub fn stls(&self) -> bool {
        self.list.contains(&Capability::Stls)
    }

    /// `TOP` is listed.
    pub fn top(&self) -> bool {
        self.list.contains(&Capability::Top)
    }

    /// `UIDL` is listed.
    pub fn uidl(&self) -> bool {
        self.list.contains(&Capability::Uidl)
    }

    /// `USER` is listed.
    pub fn user(&self) -> bool {
        self.list.contains(&Capability::User)
    }

    /// `UTF8` is listed.
    pub fn utf8(&self) -> bool {
        self.list
            .iter()
            .any(|c| matches!(c, Capability::Utf8 { .. }))
    }

    /// `LANG` is listed.
    pub fn lang(&self) -> bool {
        self.list.contains(&Capability::Lang)
    }

    /// The SASL mechanisms listed, upper case; empty when there is no `SASL` line.
    pub fn sasl_mechanisms(&self) -> impl Iterator<Item = &str> {
        self.list
            .iter()
            .filter_map(|c| match c {
                Capability::Sasl(m) => Some(m.iter().map(String::as_str)),
                _ => None,
            })
            .flatten()
    }

    /// Whether a SASL mechanism is listed (case-insensitive).
    pub fn has_sasl(&self, mechanism: &str) -> bool {
        self.sasl_mechanisms()
            .any(|m| m.eq_ignore_ascii_case(mechanism))
    }

    /// The seconds of `LOGIN-DELAY`, if listed: how long the server wants
    /// between two logins.
    ///
    /// ```
    /// use pop3_proto::{Capabilities, Capability};
    /// let caps = Capabilities {
    ///     list: vec![Capability::Uidl, Capability::LoginDelay { seconds: 900, per_user: false }],
    /// };
    /// assert_eq!(caps.login_delay(), Some(900));
    /// ```
    pub fn login_delay(&self) -> Option<u64> {
        self.list.iter().find_map(|c| match c {
            Capability::LoginDelay { seconds, .. } => Some(*seconds),
            _ => None,
        })
    }

    /// The `IMPLEMENTATION` text, if listed.
    pub fn implementation(&self) -> Option<&Text> {
        self.list.iter().find_map(|c| match c {
            Capability::Implementation(text) => Some(text),
            _ => None,
        })
    }
}
