//! The Cyrus suite (`test_support::cyrus_scenarios`: a real Cyrus pop3d 3.6,
//! SCRAM with and without channel binding, byte-exact retrieval), each test
//! on a current-thread tokio runtime of its own.

mod common;

use common::Tokio;

test_support::cyrus_tests!(Tokio::new());
