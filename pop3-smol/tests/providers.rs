//! The provider suite (`test_support::provider_scenarios`: Microsoft 365,
//! Gmail and a Courier-like server, scripted), once on `smol::block_on` and
//! once on `async_std::task::block_on`.

mod common;

use std::marker::PhantomData;

use common::{AsyncStdExec, Smol, SmolExec};

test_support::provider_tests!(Smol::<SmolExec>(PhantomData));

mod on_async_std {
    use super::*;

    test_support::provider_tests!(Smol::<AsyncStdExec>(PhantomData));
}
