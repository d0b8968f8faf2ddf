//! The hostile-server suite (`test_support::hostile`), each call run with
//! `Runtime::block_on` on a current-thread tokio runtime per session.

mod common;

use common::Tokio;

test_support::hostile_tests!(Tokio::new());
