//! The Cyrus suite (`test_support::cyrus_scenarios`: a real Cyrus pop3d 3.6,
//! SCRAM with and without channel binding, byte-exact retrieval), once on
//! `smol::block_on` and once on `async_std::task::block_on`.

mod common;

use std::marker::PhantomData;

use common::{AsyncStdExec, Smol, SmolExec};

test_support::cyrus_tests!(Smol::<SmolExec>(PhantomData));

mod on_async_std {
    use super::*;

    test_support::cyrus_tests!(Smol::<AsyncStdExec>(PhantomData));
}
