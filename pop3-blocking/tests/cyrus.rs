//! The Cyrus suite (`test_support::cyrus_scenarios`: a real Cyrus pop3d 3.6,
//! SCRAM with and without channel binding, byte-exact retrieval) against
//! pop3-blocking.

mod common;

use common::Blocking;

test_support::cyrus_tests!(Blocking);
