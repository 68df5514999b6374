//! The `#[remote]` attribute of [forkmap](https://docs.rs/forkmap).
//!
//! Use it through `forkmap::remote`; this crate is an implementation detail
//! and its generated code refers only to `::forkmap::__private`.
//!
//! `#[remote]` goes on a *factory*: a function whose body ends in the closure
//! it returns. Calling the factory then returns a struct holding its
//! arguments; that struct travels to the worker processes, where the body of
//! the factory runs again to rebuild the closure.
//!
//! # Expansion
//!
//! ```text
//! /// Raises to a power.
//! #[remote]
//! pub fn power_factory(y: u32) -> impl Fn(u64) -> u64 {
//!     move |x| x.pow(y)
//! }
//! ```
//!
//! becomes what `cargo expand` shows below, abridged: `__private` stands for
//! `::forkmap::__private` (or `<crate path>::__private` with `crate = ...`),
//! `serde` for `__private::serde`, and `Clone`, `Debug`, `Result`, `Vec`,
//! `Box`, `String`… for their absolute `::core`/`::std` paths; long doc
//! strings and repeated method bodies are cut short with `...`.
//!
//! ```text
//! /// Raises to a power.
//! pub fn power_factory(y: u32) -> PowerFactory {
//!     // Spanned at the body's braces: an unused factory is reported as
//!     // a function never used. An `#[expect(..)]` on the factory is split:
//!     // lints of the item (`dead_code`, `missing_docs`...) are expected
//!     // here, the others in the body.
//!     PowerFactory { y }
//! }
//!
//! /// A [`power_factory`] with its arguments: what travels to worker processes.
//! /// (...)
//! // (`#[allow(non_snake_case)]` here when a parameter's name is not snake
//! // case: it is linted once, at the factory.)
//! pub struct PowerFactory {
//!     y: u32,
//! }
//!
//! impl PowerFactory {
//!     /// Runs the body of [`power_factory`] with these arguments and returns
//!     /// its closure, for use in this process.
//!     pub fn into_closure(self) -> impl Fn(u64) -> u64 {
//!         // The factory as written, not `const`, under a name of the macro's
//!         // (in its body, `power_factory` is still the factory), with the lint
//!         // levels set on the factory: its body has no `self`, and an `allow`
//!         // on the factory reaches it.
//!         #[allow(clippy::too_many_arguments)] // reported at the factory
//!         fn __remote_power_factory(y: u32) -> impl Fn(u64) -> u64 {
//!             move |x| x.pow(y)
//!         }
//!         __remote_power_factory(self.y)
//!     }
//!
//!     /// Runs the body of [`power_factory`] with a clone of these arguments
//!     /// and calls the closure it returns once, in this process. (...)
//!     #[allow(dead_code)]
//!     pub fn call(&self, arg0: u64) -> u64
//!     where
//!         for<'__a> Self: Clone,
//!     {
//!         (Clone::clone(self).into_closure())(arg0)
//!     }
//! }
//!
//! // `Clone` and `Debug` as derived, but bounded on every argument's type
//! // under `for<'__a>`, which defers the bound (trivial bounds are unstable):
//! // with an argument that is not `Clone`, the impl, and so `call`, simply do
//! // not apply, and the factory still compiles.
//! #[automatically_derived]
//! impl Clone for PowerFactory
//! where
//!     for<'__a> u32: Clone,
//! {
//!     #[inline]
//!     fn clone(&self) -> Self {
//!         PowerFactory { y: Clone::clone(&self.y) }
//!     }
//! }
//!
//! #[automatically_derived]
//! impl Debug for PowerFactory
//! where
//!     for<'__a> u32: Debug,
//! {
//!     fn fmt(&self, formatter: &mut Formatter<'_>) -> fmt::Result {
//!         formatter.debug_struct("PowerFactory").field("y", &self.y).finish()
//!     }
//! }
//!
//! const _: () = {
//!     // One assertion per factory argument, spanned at its type: the only
//!     // place where an argument type that cannot travel is reported.
//!     fn __assert_travels<T: ?Sized + __private::Travel>() {}
//!     const _: fn() = __assert_travels::<u32>;
//!
//!     // `Serialize` and `Deserialize` as the tuple `(y,)`. Each field goes
//!     // through `__Field`, whose impls pick serde's by autoref
//!     // specialization, or an error-returning stand-in when the field's type
//!     // is not serde: so these impls never add errors of their own.
//!     struct __Field<T>(PhantomData<T>);
//!     trait __Travels { /* type Value; fn __encode(..); fn __serialize(..); fn __decode(..); */ }
//!     impl<T: serde::Serialize + serde::de::DeserializeOwned> __Travels for __Field<T> {
//!         /* serialize_element, next_element */
//!     }
//!     trait __Stays { /* the same methods */ }
//!     impl<T> __Stays for &__Field<T> { /* Err("this type cannot travel ...") */ }
//!
//!     #[automatically_derived]
//!     impl serde::Serialize for PowerFactory {
//!         fn serialize<__S: serde::Serializer>(&self, serializer: __S)
//!             -> Result<__S::Ok, __S::Error> {
//!             let mut tuple = serde::Serializer::serialize_tuple(serializer, 1usize)?;
//!             (&__Field::<u32>(PhantomData)).__encode(&self.y, &mut tuple)?;
//!             serde::ser::SerializeTuple::end(tuple)
//!         }
//!     }
//!
//!     #[automatically_derived]
//!     impl<'de> serde::Deserialize<'de> for PowerFactory {
//!         fn deserialize<__D: serde::Deserializer<'de>>(deserializer: __D)
//!             -> Result<Self, __D::Error> {
//!             struct __Visitor;
//!             impl<'de> serde::de::Visitor<'de> for __Visitor {
//!                 type Value = PowerFactory;
//!                 // expecting: "the arguments of `power_factory`"
//!                 fn visit_seq<__A: serde::de::SeqAccess<'de>>(self, mut seq: __A)
//!                     -> Result<PowerFactory, __A::Error> {
//!                     Ok(PowerFactory {
//!                         y: (&__Field::<u32>(PhantomData)).__decode(&mut seq, 0usize, &self)?,
//!                     })
//!                 }
//!             }
//!             serde::Deserializer::deserialize_tuple(deserializer, 1usize, __Visitor)
//!         }
//!     }
//!
//!     // The same assertion for each closure argument and for its result.
//!     const _: fn() = __assert_travels::<u64>;
//!     const _: fn() = __assert_travels::<u64>;
//!
//!     // The name errors carry: "my_crate::power_factory" for a factory at
//!     // the root of `my_crate`; and the wire key, which adds where
//!     // `#[remote]` stands ("my_crate::power_factory@3:1"), since two
//!     // factories of one name can share a module path inside two functions,
//!     // and a hash of the factory's code, since a macro can make two of one
//!     // name in one place.
//!     const __NAME: &str = concat!(module_path!(), "::", "power_factory");
//!     const __KEY: &str = concat!(module_path!(), "::", "power_factory", "@", line!(), ":", column!(), "#", "5f0c2b9a01d3e4f7");
//!
//!     // What a call encodes for each item: the closure's arguments, through
//!     // `__Field` (with a `__serialize` method as well), so that an argument
//!     // type that cannot travel adds no error here or at the factory's uses.
//!     #[allow(unreachable_pub)]
//!     pub struct __Items((u64,));
//!     impl serde::Serialize for __Items { /* __Field::<(u64,)>.__serialize(&self.0, ..) */ }
//!
//!     // Applies only when the result can travel: otherwise its
//!     // `__assert_travels` assertion says so, and `Task`'s bounds on
//!     // `Output` add nothing.
//!     #[automatically_derived]
//!     impl ::forkmap::Task<(u64,)> for PowerFactory
//!     where
//!         for<'__a> u64: __private::Travel,
//!     {
//!         type Output = u64;
//!         type __Args = __Items;
//!         fn __args(args: (u64,)) -> __Items { __Items(args) }
//!         fn __describe(&self, setup: &mut Vec<u8>)
//!             -> Result<__private::Described, __private::EncodeError> {
//!             __private::describe_remote(self, __KEY, __NAME, setup)
//!         }
//!     }
//!
//!     // The closure becomes a job the same way: `__IntoJob` where its types
//!     // travel, an error-returning `__Stuck` stand-in otherwise.
//!     struct __Closure<__C>(__C);
//!     trait __IntoJob {
//!         fn __into_job(self) -> Result<Box<dyn __private::Job>, String>;
//!     }
//!     impl<__C: FnMut(u64) -> u64 + 'static> __IntoJob for __Closure<__C>
//!     where
//!         for<'__a> (u64,): serde::de::DeserializeOwned,
//!         for<'__a> u64: serde::Serialize,
//!     {
//!         fn __into_job(self) -> Result<Box<dyn __private::Job>, String> {
//!             Ok(__private::job::<(u64,), __C>(self.0))
//!         }
//!     }
//!     trait __Stuck { /* the same method */ }
//!     impl<__C> __Stuck for &__Closure<__C> { /* Err("this closure's ...") */ }
//!
//!     // What a worker runs to rebuild the closure from the bytes of a
//!     // `PowerFactory`.
//!     fn __start(setup: &[u8]) -> Result<Box<dyn __private::Job>, String> {
//!         let factory: PowerFactory = __private::decode_setup(setup)?;
//!         __Closure(factory.into_closure()).__into_job()
//!     }
//!
//!     // Registered at link time, for workers to find by `__KEY`.
//!     #[__private::linkme::distributed_slice(__private::REMOTES)]
//!     #[linkme(crate = __private::linkme)]
//!     static __ENTRY: __private::RemoteEntry = __private::RemoteEntry {
//!         key: __KEY,
//!         name: __NAME,
//!         start: __start,
//!     };
//! };
//! ```
//!
//! Names generated inside the `const _` block start with `__`, so they do not
//! shadow the user's types there. The constructor keeps every attribute of the
//! function (doc comments, `#[inline]`, `#[must_use]`, lint levels…); the
//! struct, its impls and the `const _` block carry only the function's
//! `#[cfg]` attributes, so that everything exists only with the factory.
//!
//! # Options
//!
//! - `#[remote(name = MyName)]` names the struct (by default the function's
//!   name in UpperCamelCase).
//! - `#[remote(crate = path::to::forkmap)]` is for crates that re-export
//!   forkmap: generated code uses that path instead of `::forkmap`.
//!
//! # Errors
//!
//! A function that cannot be a factory is a compile error at the offending
//! token that says what to do instead, with one UI test per message in the
//! forkmap repository's `tests/ui/`: `async`, `unsafe` or `extern` functions;
//! a `self` parameter; generic parameters or a `where` clause (a worker
//! rebuilds the closure from bytes and a name, so every type must be known
//! where the factory is defined); a parameter that is not a plain name;
//! `impl Trait` or borrowed types among the arguments, or among the closure's
//! arguments and result; a return type other than `impl Fn(..) -> ..` or
//! `impl FnMut(..) -> ..` (`impl FnOnce` included); a body that does not end
//! in the closure; an unknown or repeated option. All of them are reported at
//! once, and the function is still emitted unchanged so that one mistake does
//! not cascade into errors at every call.
//!
//! A type that cannot travel (not `Serialize + DeserializeOwned`) is reported
//! by the compiler, at that type, through the message of `forkmap::Travel`.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod ast;
mod attr;
mod expand;
mod valid;

use proc_macro::TokenStream;
use quote::ToTokens as _;

/// Makes a factory function's closure runnable in forkmap's worker processes.
///
/// See the [crate documentation](crate) for what it generates, and
/// `forkmap::remote` for how to use it.
///
/// # Per-worker state
///
/// Each worker runs the factory body once per pool call, so statements before
/// the closure (building a lookup table, opening a file) run once per worker
/// per call, and their result serves every item that worker gets in that
/// call. With `impl FnMut`, the closure's mutable state likewise lives in the
/// worker for the whole call: a counter returns 1, 2, 3… over the items one
/// worker runs, in input order, but each worker counts separately, and the
/// next call starts over with a new closure. Do not rely on state shared
/// between workers or between calls.
///
/// # Local use
///
/// The struct has `into_closure(self)`, which runs the factory body here and
/// returns the closure, and `call(&self, ..)`, which does the same with a
/// clone of the arguments and calls the closure once (each `call` starts
/// afresh). The struct implements `Clone` and `Debug` (printed like a derived
/// `Debug`: `PowerFactory { y: 2 }`) when every argument type does; `call`
/// exists only when it is `Clone`.
///
/// # Generic factories
///
/// A factory cannot have generic parameters (nor a `where` clause): a worker
/// finds the factory by name and rebuilds its closure from bytes, so every
/// type must be known where the factory is defined. Write one factory per
/// type (`scale_u64`, `scale_f64`), or take the value as an argument of a
/// concrete serde type, such as an enum of the types you need.
#[proc_macro_attribute]
pub fn remote(args: TokenStream, input: TokenStream) -> TokenStream {
    expand(args.into(), input.into()).into()
}

fn expand(
    args: proc_macro2::TokenStream,
    input: proc_macro2::TokenStream,
) -> proc_macro2::TokenStream {
    let item = match syn::parse2::<syn::Item>(input.clone()) {
        Ok(syn::Item::Fn(item)) => item,
        Ok(other) => {
            let error = syn::Error::new_spanned(
                &other,
                "#[remote] goes on a factory function, such as \
                 `fn power_factory(y: u32) -> impl Fn(u64) -> u64 { move |x| x.pow(y) }`",
            );
            return fallback(input, error);
        }
        Err(error) => return fallback(input, error),
    };
    let mut errors = Errors::default();
    let options = attr::Options::parse(args).unwrap_or_else(|error| {
        errors.add(error);
        attr::Options::default()
    });
    let factory = ast::Factory::from_syn(&item, &options);
    if let Err(error) = factory.validate() {
        errors.add(error);
    }
    match errors.finish() {
        Ok(()) => expand::factory(&factory),
        Err(error) => {
            let item = expand::stand_in(&factory).unwrap_or_else(|| item.to_token_stream());
            fallback(item, error)
        }
    }
}

/// The user's item unchanged, and the errors: like thiserror's fallback, so
/// that one mistake is reported once and not again at every use.
fn fallback(item: proc_macro2::TokenStream, error: syn::Error) -> proc_macro2::TokenStream {
    let mut tokens = error.to_compile_error();
    tokens.extend(item);
    tokens
}

/// Errors collected so that all of them are reported at once.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn add(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(errors) => errors.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}
