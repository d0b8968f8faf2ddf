//! The provider suite (`test_support::provider_scenarios`: Microsoft 365,
//! Gmail and a Courier-like server, scripted) against pop3-blocking.

mod common;

use common::Blocking;

test_support::provider_tests!(Blocking);
