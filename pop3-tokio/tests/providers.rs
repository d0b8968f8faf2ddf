//! The provider suite (`test_support::provider_scenarios`: Microsoft 365,
//! Gmail and a Courier-like server, scripted), each test on a current-thread
//! tokio runtime of its own.

mod common;

use common::Tokio;

test_support::provider_tests!(Tokio::new());
