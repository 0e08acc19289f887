//! Union checkouts of an image's layers.

mod hardlink;

pub use hardlink::CheckoutFailure;
pub(crate) use hardlink::Linker;
