//! Links pop3-proto into a crate without std. See Cargo.toml.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use pop3_proto::{Action, Client, Config};

/// Greets a client and returns whether it then asks for more input.
pub fn smoke() -> bool {
    let mut client = Client::new(Config::default());
    client.receive(b"+OK ready\r\n");
    matches!(client.poll(), Ok(Action::Event(_)))
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}
