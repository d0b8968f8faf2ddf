//! The hostile-server suite (`test_support::hostile`) against pop3-blocking.

mod common;

use common::Blocking;

test_support::hostile_tests!(Blocking);
