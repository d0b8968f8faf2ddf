//! A C ABI over the sans-IO `pop3-proto` core.
//!
//! Any event loop — poll/epoll/kqueue in C, libuv, libev, or another
//! language through its C FFI — can speak POP3 through the same core as the
//! Rust transports, doing its own I/O and its own TLS. The library never
//! touches a socket: the caller hands it received bytes, takes bytes to
//! write, and pulls events.
//!
//! The C header is `include/pop3.h`, generated from this crate by cbindgen
//! and committed. The run loop is documented once, on `pop3_client` (in the
//! header above `typedef struct pop3_client`); `README.md` covers building
//! and linking, and `examples/fetch.c` is a complete program on `poll(2)` and
//! OpenSSL.
//!
//! # Conventions
//!
//! - Every fallible function returns a `pop3_result`: `POP3_OK` (0),
//!   `POP3_DONE` (1, nothing to report now), or a negative error code;
//!   `pop3_result_message` turns any value into static text.
//! - Out-parameters are written only when the call returns `POP3_OK`.
//! - Every pointer argument is checked for NULL (`POP3_ERR_NULL`).
//! - Panics never cross the boundary: they become `POP3_ERR_PANIC`, and the
//!   client they happened in refuses further calls.
//! - Pointers the library hands out are borrowed from the client, valid until
//!   the call named in each function's documentation; the caller never frees
//!   them.
//! - Bytes that carried a password are wiped when they are released.
//!
//! The functions are `unsafe` to call from Rust because they take raw
//! pointers; the fuzz target and the tests call them that way.

#[allow(unsafe_code)] // The one module with extern "C" functions and raw pointers.
mod abi;
mod result;
mod session;

pub use abi::*;
pub use result::*;
