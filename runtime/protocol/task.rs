//! What a pool can run: the [`Task`] trait and its impls for plain functions,
//! and [`Travel`], what its items, arguments and results must be.

use std::mem::size_of;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::protocol::entry::{self, Described, EncodeError};

/// A value that can travel between processes: an item a pool sends to a
/// worker, a result it sends back, an argument of a
/// [`#[remote]`](crate::remote) factory.
///
/// It is implemented for every type that is `serde::Serialize` and
/// `serde::de::DeserializeOwned`: owned data, such as `u64`, `String`,
/// `Vec<T>` or a type with `#[derive(Serialize, Deserialize)]`, and not a
/// borrow such as `&str` or `&T`, which means nothing in another process.
/// Where a type does not travel, the compiler's message says so and how to
/// fix it.
///
/// ```
/// use forkmap::Travel;
///
/// fn travels<T: Travel>() {}
///
/// travels::<(u64, String, Vec<f64>)>();
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot travel to a worker process",
    label = "`{Self}` must be owned and implement `serde::Serialize` and `serde::Deserialize`",
    note = "a pool sends each item to a worker process and each result back, and a #[remote] factory's arguments go with it: each is encoded here and decoded there",
    note = "for a borrowed value, send it owned: `String` for `&str`, `Vec<T>` for `&[T]`, `T` for `&T` (`.iter().cloned()`, or `.into_iter()` on the collection itself)",
    note = "for a type of your own, add `#[derive(serde::Serialize, serde::Deserialize)]` to its definition (serde's `derive` feature); for a handle such as a file or a connection, send what opens it (a path, an address) and open it in the worker"
)]
pub trait Travel: Serialize + DeserializeOwned {}

// Not recommended, so that a type that does not travel is reported against
// `Travel`, with its message, rather than against serde's traits one by one.
#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned> Travel for T {}

/// Something a pool can run in a worker process, called with the argument
/// tuple `Args`.
///
/// It is implemented for:
///
/// - plain functions and closures that capture nothing, of up to eight
///   arguments: they carry no data, so a worker only needs to know which code
///   to run;
/// - the values returned by factories marked [`#[remote]`](crate::remote):
///   they carry the factory's arguments, and the worker runs the factory body
///   again to build the closure.
///
/// A closure that captures variables is not a `Task` that can travel: passing
/// one to a pool is a compile error that says to use `#[remote]` (reported by
/// `cargo check` when it captures a value that is not `Copy`, and by `cargo
/// build` otherwise, since no trait of stable Rust tells a closure that
/// captures a `u32` from one that captures nothing).
///
/// `Args` is always a tuple: `(A,)` for one argument, `(A, B)` for two, and so
/// on, as in Python's `starmap` and `apply`.
///
/// ```
/// use forkmap::{remote, ProcessPool};
///
/// fn add(a: u64, b: u64) -> u64 {
///     a + b
/// }
///
/// #[remote]
/// fn adder(n: u64) -> impl Fn(u64) -> u64 {
///     move |x| x + n
/// }
///
/// let pool = ProcessPool::new(2)?;
/// assert_eq!(pool.apply(add, (2, 3))?, 5);
/// assert_eq!(pool.apply(|x: u64| x * 10, (4,))?, 40);
/// assert_eq!(pool.apply(adder(100), (1,))?, 101);
/// # Ok::<(), forkmap::Error>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a task that a pool can call with the arguments `{Args}`",
    label = "cannot be called with `{Args}`",
    note = "a pool runs a plain function, a closure that captures nothing, or the value of a #[remote] factory",
    note = "`apply` and `starmap` take each call's arguments as a tuple, `(x,)` for one and `(x, y)` for two; `map` and `imap` take the items themselves"
)]
pub trait Task<Args>: Send + 'static {
    /// What one call returns.
    type Output: Travel + Send + 'static;

    /// `Args` again, known to serialize: through it a call encodes its
    /// items, so that pools' signatures need not bound them (a type that
    /// does not travel is then reported once, by [`Travel`]).
    #[doc(hidden)]
    type __Args: Serialize;

    /// `args` as [`__Args`](Task::__Args): the identity.
    #[doc(hidden)]
    fn __args(args: Args) -> Self::__Args;

    /// Evaluating it fails the build where this task cannot travel: a
    /// closure that captures variables. Each public call that takes a task
    /// evaluates it once, so the error names the user's call.
    #[doc(hidden)]
    const __CAPTURES_NOTHING: () = ();

    /// Says how a worker finds this task's code, and appends the data it
    /// carries to `setup`. Implemented by the library and by `#[remote]`.
    #[doc(hidden)]
    fn __describe(&self, setup: &mut Vec<u8>) -> Result<Described, EncodeError>;
}

/// A closure whose value can be copied: the first condition for running it
/// from its code alone, checked where the type is known, so that a closure
/// that captures a `String`, a `Vec` or a handle is refused by `cargo check`
/// with the message below. A closure that captures only `Copy` values passes
/// this and fails [`Task::__CAPTURES_NOTHING`] at `cargo build`.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "this closure captures variables, and a worker process gets only its code, not what it captured",
    label = "the closure given here captures variables",
    note = "make the captured values arguments of a #[remote] factory that returns the closure, and pass the factory's value to the pool:",
    note = "    #[forkmap::remote]\n    fn label_by(prefix: String) -> impl Fn(u64) -> String {{\n        move |x| format!(\"{{prefix}}{{x}}\")\n    }}\n    pool.map(label_by(prefix), items)"
)]
pub trait CapturesNothing: Copy {}

#[diagnostic::do_not_recommend]
impl<F: Copy> CapturesNothing for F {}

/// A closure called with its arguments packed in a tuple.
///
/// This is how a worker calls any closure, whatever its arity.
pub trait CallWith<Args> {
    /// What the closure returns.
    type Output;

    /// Calls the closure with the tuple's elements as arguments.
    fn call_with(&mut self, args: Args) -> Self::Output;
}

macro_rules! impl_arity {
    ($($arg:ident),*) => {
        impl<F, O, $($arg,)*> CallWith<($($arg,)*)> for F
        where
            F: FnMut($($arg),*) -> O,
        {
            type Output = O;

            #[allow(non_snake_case)]
            fn call_with(&mut self, ($($arg,)*): ($($arg,)*)) -> O {
                self($($arg),*)
            }
        }

        impl<F, O, $($arg,)*> Task<($($arg,)*)> for F
        where
            // The arguments' bounds come first, and with no `'static`: the
            // compiler then reports a borrowed argument (`&str`) once, as a
            // type that is not `Deserialize` for every lifetime, rather than
            // blaming the result or the borrow.
            $($arg: Travel + Send,)*
            F: Fn($($arg),*) -> O + CapturesNothing + Send + 'static,
            O: Travel + Send + 'static,
        {
            type Output = O;

            // Only a zero-sized closure captures nothing: a worker rebuilds
            // it from its code alone.
            const __CAPTURES_NOTHING: () = assert!(
                size_of::<F>() == 0,
                "forkmap: this closure captures variables, and a worker process gets only \
                 its code, not what it captured\nmake the captured values arguments of a \
                 #[remote] factory that returns the closure, and pass the factory's value to \
                 the pool:\n    #[forkmap::remote]\n    fn pow_by(y: u32) -> impl Fn(u64) -> \
                 u64 {{\n        move |x| x.pow(y)\n    }}\n    pool.map(pow_by(y), items)\n\
                 (a `fn` pointer is refused the same way: pass the function by its name)"
            );

            type __Args = ($($arg,)*);

            fn __args(args: ($($arg,)*)) -> ($($arg,)*) {
                args
            }

            fn __describe(&self, _setup: &mut Vec<u8>) -> Result<Described, EncodeError> {
                Ok(entry::plain::<F, ($($arg,)*)>())
            }
        }
    };
}

impl_arity!();
impl_arity!(A1);
impl_arity!(A1, A2);
impl_arity!(A1, A2, A3);
impl_arity!(A1, A2, A3, A4);
impl_arity!(A1, A2, A3, A4, A5);
impl_arity!(A1, A2, A3, A4, A5, A6);
impl_arity!(A1, A2, A3, A4, A5, A6, A7);
impl_arity!(A1, A2, A3, A4, A5, A6, A7, A8);
