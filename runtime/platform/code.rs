//! Code identity: turning a start function into bytes that a worker turns
//! back into the same function, and making a value of a zero-sized function
//! type in the worker.
//!
//! A plain function or a closure that captures nothing is monomorphic code
//! with no registry entry, so the parent sends the function's offset from a
//! fixed point of the program image ([`anchor`]) with a check value, and the
//! worker turns the offset back into a pointer only if the check matches.

use std::any::type_name;
use std::mem::size_of;

/// The fixed point in the program image that code offsets are measured from.
#[inline(never)]
fn anchor() {}

fn anchor_address() -> i64 {
    let anchor: fn() = anchor;
    anchor as usize as i64
}

/// The check value of a code offset for functions of type `fn(&[u8]) -> R`:
/// a hash of the offset and the pointer's type, keyed with forkmap's version.
/// Bytes that were not made by [`code_offset`] for that type (corrupted, or
/// not a frame at all) match it with a chance of one in 2^64. It does not
/// tell one binary from another: a backend that runs workers from another
/// copy of the program must check that both are the same build first.
fn check<R>(offset: i64) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(
        &(
            offset,
            type_name::<fn(&[u8]) -> R>(),
            "forkmap code entry",
            env!("CARGO_PKG_VERSION"),
        ),
        &mut hasher,
    );
    std::hash::Hasher::finish(&hasher)
}

/// The offset of `function` from [`anchor`], and its check value.
pub(crate) fn code_offset<R>(function: fn(&[u8]) -> R) -> (i64, u64) {
    let offset = (function as usize as i64).wrapping_sub(anchor_address());
    (offset, check::<R>(offset))
}

/// The function that [`code_offset`] described as `(offset, sent)` in this
/// program image, or `None` if the check value does not match.
pub(crate) fn function_at<R>(offset: i64, sent: u64) -> Option<fn(&[u8]) -> R> {
    if sent != check::<R>(offset) {
        return None;
    }
    let address = anchor_address().wrapping_add(offset) as usize;
    // SAFETY: a matching check value means `(offset, sent)` was made by
    // `code_offset::<R>` from a real `fn(&[u8]) -> R` of this program image
    // (bytes that were not match with a chance of one in 2^64; the pointer's
    // type is part of the hash, so a pointer of another type does not match
    // either). Workers are forked from the parent or from the fork server,
    // itself a copy of the same binary, so they run the same image at the
    // same load address, and `anchor + offset` is that same function (a
    // backend that runs the binary elsewhere must first check that both sides
    // run the same build). The entry reaches the worker only through the
    // pool's own channel, which no other process holds, so the worker decodes
    // the value the parent encoded. The pointer is therefore a valid function
    // of exactly the type it is transmuted to.
    Some(unsafe { std::mem::transmute::<usize, fn(&[u8]) -> R>(address) })
}

/// A number that tells builds of the program apart: where some of
/// forkmap's functions lie in the program image, relative to each other,
/// and forkmap's version. Two runs of the same binary agree; another build
/// (other code, or another version of forkmap) differs, so that a code
/// offset made by one is never used by the other.
pub(crate) fn build_identity() -> u64 {
    let places: [fn(&[u8]) -> u64; 2] = [place_a, place_b];
    let mut hasher = std::hash::DefaultHasher::new();
    for place in places {
        std::hash::Hash::hash(&code_offset(place), &mut hasher);
    }
    std::hash::Hash::hash(&("forkmap build", env!("CARGO_PKG_VERSION")), &mut hasher);
    std::hash::Hasher::finish(&hasher)
}

/// Two functions whose places [`build_identity`] hashes.
#[inline(never)]
fn place_a(bytes: &[u8]) -> u64 {
    bytes.len() as u64
}

#[inline(never)]
fn place_b(bytes: &[u8]) -> u64 {
    bytes.first().map_or(0, |&b| u64::from(b))
}

/// A value of the zero-sized `Copy` type `F`: a function item, or a closure
/// that captures nothing.
///
/// Callers use it only for a type of which the parent held a value (the
/// function a task describes), so the type is inhabited. Calling it for
/// a type with bytes panics (callers check that at compile time, with a
/// message of their own).
pub(crate) fn copy_of_zero_sized<F: Copy + 'static>() -> F {
    assert_eq!(size_of::<F>(), 0, "a value with bytes cannot be conjured");
    // SAFETY: `F` is zero-sized (asserted just above), so a value
    // of it has no bytes that could be uninitialised. `F` is `Copy`, so it
    // owns nothing, has no drop glue, and a holder of one may duplicate it at
    // will: the parent held an `F` when it described the task, and the value
    // made here is exactly a copy of that one. Function items and closures
    // that capture only zero-sized `Copy` values have no other invariant.
    unsafe { std::mem::zeroed() }
}
