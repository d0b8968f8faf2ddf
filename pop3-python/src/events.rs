//! The event classes Python receives from `Client.next_event()`, and the
//! conversion from the core's events.

use pop3_proto::{Capabilities as CoreCaps, Direction, Event, Handle, Reply, Text};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

/// Declares a frozen event class with read-only attributes and a repr that
/// names every field, so that printed events are self-explaining.
macro_rules! event_class {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[pyclass(module = "pop3", frozen, get_all)]
        pub(crate) struct $name {
            $($(#[$fdoc])* pub(crate) $field: $ty,)*
        }

        #[pymethods]
        impl $name {
            #[classattr]
            fn __match_args__() -> Vec<&'static str> {
                vec![$(stringify!($field)),*]
            }

            fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
                #[allow(unused_mut)]
                let mut parts: Vec<String> = Vec::new();
                let _ = slf;
                $(
                    let value = slf.getattr(stringify!($field))?;
                    parts.push(format!("{}={}", stringify!($field), value.repr()?));
                )*
                Ok(format!("{}({})", stringify!($name), parts.join(", ")))
            }
        }
    };
}

event_class! {
    /// The client needs more bytes from the server: read and call `receive_data`.
    NeedData {}
}
event_class! {
    /// The session is over (QUIT answered or connection closed): close the socket.
    Closed {}
}
event_class! {
    /// The server's `+OK` greeting.
    Greeting {
        /// Greeting text, sanitised.
        text: String,
        /// The APOP timestamp, if the greeting carries one.
        apop_timestamp: Option<String>,
    }
}
event_class! {
    /// A command succeeded with a one-line `+OK`.
    Ok {
        /// The command's handle.
        handle: Option<u64>,
        /// The text after `+OK`, sanitised.
        text: String,
    }
}
event_class! {
    /// A login completed: the session is in the transaction state.
    LoggedIn {
        /// The login's handle.
        handle: Option<u64>,
        /// The text after `+OK`.
        text: String,
    }
}
event_class! {
    /// The server refused a command with `-ERR`. The session goes on.
    Err {
        /// The command's handle.
        handle: Option<u64>,
        /// The response code (`"AUTH"`, `"IN-USE"`, `"SYS/TEMP"`, ...), if any.
        code: Option<String>,
        /// The text after the code, sanitised.
        text: String,
        /// For an `xoauth2` / `oauthbearer` login the server refused after a
        /// JSON error report (Gmail sends one): the core's words for it, such
        /// as "the token was refused (expired, or lacks the scope ...)".
        token_refusal: Option<String>,
        /// The report's `status` (`"400"`, `"invalid_token"`, ...).
        token_status: Option<String>,
        /// The report's `scope`: the scope the token needs.
        token_scope: Option<String>,
        /// The report's `schemes` (`"Bearer"`).
        token_schemes: Option<String>,
        /// The server refused the credentials: a login step (`USER`, `PASS`,
        /// `APOP`, `AUTH`) refused with `[AUTH]`, without a code (as
        /// Microsoft's servers do) or with one the core does not know.
        authentication_refused: bool,
    }
}
event_class! {
    /// The reply to `STAT`.
    Stat {
        /// The command's handle.
        handle: Option<u64>,
        /// Number of messages.
        count: u32,
        /// Size of the maildrop in octets.
        size: u64,
    }
}
event_class! {
    /// One entry of a `LIST` reply.
    ListEntry {
        /// Message number.
        msg: u32,
        /// Size in octets.
        size: u64,
    }
}
event_class! {
    /// One entry of a `UIDL` reply.
    UidlEntry {
        /// Message number.
        msg: u32,
        /// Unique id.
        uid: String,
    }
}
event_class! {
    /// The reply to `LIST` (all messages) or `LIST n` (one entry).
    Listing {
        /// The command's handle.
        handle: Option<u64>,
        /// The entries, as `ListEntry` objects.
        entries: Py<PyList>,
    }
}
event_class! {
    /// The reply to `UIDL` (all messages) or `UIDL n` (one entry).
    UidListing {
        /// The command's handle.
        handle: Option<u64>,
        /// The entries, as `UidlEntry` objects.
        entries: Py<PyList>,
    }
}
event_class! {
    /// The server's capabilities, from `CAPA` (handle None when the client
    /// asked by itself, after TLS or login).
    Capabilities {
        /// The `CAPA` command's handle, or None.
        handle: Option<u64>,
        /// `{name: [arguments]}`, names upper case.
        capabilities: Py<PyDict>,
    }
}
event_class! {
    /// The reply to `LANG` without argument: `[(tag, description), ...]`.
    Languages {
        /// The command's handle.
        handle: Option<u64>,
        /// The languages.
        languages: Py<PyList>,
    }
}
event_class! {
    /// `RETR`/`TOP` accepted: BodyChunk events follow, then BodyEnd.
    BodyStart {
        /// The command's handle.
        handle: Option<u64>,
    }
}
event_class! {
    /// A piece of a message, dot-unstuffed, line endings as sent.
    BodyChunk {
        /// The command's handle.
        handle: Option<u64>,
        /// The bytes.
        data: Py<PyBytes>,
    }
}
event_class! {
    /// The message body is complete.
    BodyEnd {
        /// The command's handle.
        handle: Option<u64>,
    }
}
event_class! {
    /// Start the TLS handshake now, then call `tls_established()` (or
    /// `tls_failed()`). Repeated until then. Do not read plaintext before.
    StartTls {
        /// Always None, as C's POP3_EVENT_START_TLS names no command: a STLS
        /// submitted on its own has completed with `Ok` just before, and
        /// `start_tls()` completes later with `TlsEstablished`.
        handle: Option<u64>,
    }
}
event_class! {
    /// `start_tls()` completed: TLS is up and the capabilities are current.
    TlsEstablished {
        /// The operation's handle.
        handle: Option<u64>,
    }
}
event_class! {
    /// One line on the wire (secrets redacted), when tracing is on.
    Trace {
        /// "sent" or "received".
        direction: String,
        /// The line without its CRLF.
        line: String,
    }
}
event_class! {
    /// A reply could not be used (malformed, too long); it was read to its end
    /// and the session goes on. Discard body chunks already given for it.
    Failed {
        /// The command's handle.
        handle: Option<u64>,
        /// What was wrong.
        error: String,
    }
}
event_class! {
    /// The command was never sent, because an earlier STLS or login step failed.
    Cancelled {
        /// The command's handle.
        handle: Option<u64>,
        /// Why.
        reason: String,
        /// Whether the session ended under it (the server hung up or broke
        /// the protocol): the server's doing, not the caller's.
        session_ended: bool,
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NeedData>()?;
    m.add_class::<Closed>()?;
    m.add_class::<Greeting>()?;
    m.add_class::<Ok>()?;
    m.add_class::<LoggedIn>()?;
    m.add_class::<Err>()?;
    m.add_class::<Stat>()?;
    m.add_class::<ListEntry>()?;
    m.add_class::<UidlEntry>()?;
    m.add_class::<Listing>()?;
    m.add_class::<UidListing>()?;
    m.add_class::<Capabilities>()?;
    m.add_class::<Languages>()?;
    m.add_class::<BodyStart>()?;
    m.add_class::<BodyChunk>()?;
    m.add_class::<BodyEnd>()?;
    m.add_class::<StartTls>()?;
    m.add_class::<TlsEstablished>()?;
    m.add_class::<Trace>()?;
    m.add_class::<Failed>()?;
    m.add_class::<Cancelled>()?;
    Ok(())
}

fn object<T: pyo3::PyClass + Into<pyo3::PyClassInitializer<T>>>(
    py: Python<'_>,
    value: T,
) -> PyResult<PyObject> {
    Ok(Py::new(py, value)?.into_any())
}

pub(crate) fn need_data(py: Python<'_>) -> PyResult<PyObject> {
    object(py, NeedData {})
}

pub(crate) fn closed(py: Python<'_>) -> PyResult<PyObject> {
    object(py, Closed {})
}

pub(crate) fn body_chunk(py: Python<'_>, handle: Option<u64>, data: &[u8]) -> PyResult<PyObject> {
    object(
        py,
        BodyChunk {
            handle,
            data: PyBytes::new(py, data).unbind(),
        },
    )
}

pub(crate) fn start_tls(py: Python<'_>) -> PyResult<PyObject> {
    object(py, StartTls { handle: None })
}

/// `{name: [arguments]}` in the shape `poplib.POP3.capa()` returns.
pub(crate) fn capability_dict<'py>(
    py: Python<'py>,
    caps: &CoreCaps,
) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for cap in &caps.list {
        // poplib splits each CAPA line into its words: the same here, from
        // the line as the core writes it.
        let line = cap.to_string();
        let mut words = line.split_whitespace();
        let Some(name) = words.next() else {
            continue;
        };
        let args: Vec<&str> = words.collect();
        dict.set_item(name, PyList::new(py, args)?)?;
    }
    Ok(dict)
}

/// Converts one core event. Python names a command by its handle's id.
pub(crate) fn convert(py: Python<'_>, event: Event<'_>) -> PyResult<Option<PyObject>> {
    let done = |h: &Handle| Some(h.id());
    let obj = match event {
        Event::Greeting(g) => object(
            py,
            Greeting {
                text: g.text.as_str().to_owned(),
                apop_timestamp: g.apop_timestamp,
            },
        )?,
        Event::Ok { handle, reply } => {
            let h = done(&handle);
            match reply {
                Reply::Ok(text) => object(
                    py,
                    Ok {
                        handle: h,
                        text: text.as_str().to_owned(),
                    },
                )?,
                Reply::Authenticated(text) => object(
                    py,
                    LoggedIn {
                        handle: h,
                        text: text.as_str().to_owned(),
                    },
                )?,
                Reply::Stat(s) => object(
                    py,
                    Stat {
                        handle: h,
                        count: s.count,
                        size: s.size,
                    },
                )?,
                Reply::List(entries) => list_event(py, h, entries.iter().copied())?,
                Reply::ListOne(entry) => list_event(py, h, std::iter::once(entry))?,
                Reply::Uidl(entries) => uidl_event(py, h, entries.iter().cloned())?,
                Reply::UidlOne(entry) => uidl_event(py, h, std::iter::once(entry))?,
                Reply::Capabilities(caps) => object(
                    py,
                    Capabilities {
                        handle: h,
                        capabilities: capability_dict(py, &caps)?.unbind(),
                    },
                )?,
                Reply::Languages(langs) => {
                    let items = langs
                        .iter()
                        .map(|l| PyTuple::new(py, [l.tag.as_str(), l.description.as_str()]))
                        .collect::<PyResult<Vec<_>>>()?;
                    object(
                        py,
                        Languages {
                            handle: h,
                            languages: PyList::new(py, items)?.unbind(),
                        },
                    )?
                }
                Reply::BodyEnd => object(py, BodyEnd { handle: h })?,
                Reply::TlsEstablished => object(py, TlsEstablished { handle: h })?,
                _ => object(
                    py,
                    Ok {
                        handle: h,
                        text: String::new(),
                    },
                )?,
            }
        }
        Event::Err { handle, error } => {
            let refusal = error.token_refusal.as_ref();
            let part = |t: Option<&Text>| t.map(|t| t.as_str().to_owned());
            object(
                py,
                Err {
                    handle: done(&handle),
                    code: error.code.as_ref().map(|c| c.to_string()),
                    text: error.text.as_str().to_owned(),
                    token_refusal: refusal.map(|r| r.to_string()),
                    token_status: part(refusal.map(|r| &r.status)),
                    token_scope: part(refusal.and_then(|r| r.scope.as_ref())),
                    token_schemes: part(refusal.and_then(|r| r.schemes.as_ref())),
                    authentication_refused: error.is_authentication_refusal(),
                },
            )?
        }
        Event::BodyStart { handle } => object(
            py,
            BodyStart {
                handle: Some(handle.id()),
            },
        )?,
        Event::Body { handle, data } => object(
            py,
            BodyChunk {
                handle: Some(handle.id()),
                data: PyBytes::new(py, data).unbind(),
            },
        )?,
        Event::Failed { handle, error } => object(
            py,
            Failed {
                handle: done(&handle),
                error: error.to_string(),
            },
        )?,
        Event::Cancelled { handle, reason } => {
            let h = done(&handle);
            object(
                py,
                Cancelled {
                    handle: h,
                    session_ended: matches!(
                        reason,
                        pop3_proto::UsageError::Closed | pop3_proto::UsageError::Failed(_)
                    ),
                    reason: reason.to_string(),
                },
            )?
        }
        Event::Trace(trace) => object(
            py,
            Trace {
                direction: match trace.direction {
                    Direction::Sent => "sent",
                    Direction::Received => "received",
                }
                .to_owned(),
                line: trace.line.as_str().to_owned(),
            },
        )?,
        Event::Capabilities(caps) => object(
            py,
            Capabilities {
                handle: None,
                capabilities: capability_dict(py, &caps)?.unbind(),
            },
        )?,
        _ => return Ok(None),
    };
    Ok(Some(obj))
}

fn list_event(
    py: Python<'_>,
    handle: Option<u64>,
    entries: impl Iterator<Item = pop3_proto::ListEntry>,
) -> PyResult<PyObject> {
    let items = entries
        .map(|e| {
            Py::new(
                py,
                ListEntry {
                    msg: e.msg.get(),
                    size: e.size,
                },
            )
        })
        .collect::<PyResult<Vec<_>>>()?;
    object(
        py,
        Listing {
            handle,
            entries: PyList::new(py, items)?.unbind(),
        },
    )
}

fn uidl_event(
    py: Python<'_>,
    handle: Option<u64>,
    entries: impl Iterator<Item = pop3_proto::UidlEntry>,
) -> PyResult<PyObject> {
    let items = entries
        .map(|e| {
            Py::new(
                py,
                UidlEntry {
                    msg: e.msg.get(),
                    uid: e.uid,
                },
            )
        })
        .collect::<PyResult<Vec<_>>>()?;
    object(
        py,
        UidListing {
            handle,
            entries: PyList::new(py, items)?.unbind(),
        },
    )
}
