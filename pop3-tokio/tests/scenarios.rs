//! The shared scenario suite (Dovecot and scripted faults), each call run
//! with `Runtime::block_on` on a current-thread tokio runtime per session.

mod common;

use common::Tokio;

test_support::scenario_tests!(Tokio::new());
