//! The shared scenario suite (`test_support::scenarios`) against pop3-blocking.

mod common;

use common::Blocking;

test_support::scenario_tests!(Blocking);
