//! The shared scenario suite (Dovecot and scripted faults), each call run
//! with `block_on`: the whole suite once on `smol::block_on` and once on
//! `async_std::task::block_on`.

mod common;

use std::marker::PhantomData;

use common::{AsyncStdExec, Smol, SmolExec};

test_support::scenario_tests!(Smol::<SmolExec>(PhantomData));

mod on_async_std {
    use super::*;

    test_support::scenario_tests!(Smol::<AsyncStdExec>(PhantomData));
}
