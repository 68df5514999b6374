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
//! ```ignore
//! /// Raises to a power.
//! #[remote]
//! pub fn power_factory(y: u32) -> impl Fn(u64) -> u64 {
//!     move |x| x.pow(y)
//! }
//! ```
//!
//! becomes (abridged: `__private` stands for `::forkmap::__private`, and
//! `Result`, `Vec`, `Box`… for their absolute paths):
//!
//! ```ignore
//! /// Raises to a power.
//! pub fn power_factory(y: u32) -> PowerFactory {
//!     PowerFactory { y }
//! }
//!
//! /// A [`power_factory`] with its arguments: what travels to worker processes.
//! /// (...)
//! pub struct PowerFactory {
//!     y: u32,
//! }
//!
//! impl PowerFactory {
//!     /// Runs the body of [`power_factory`] with these arguments and returns
//!     /// its closure, for use in this process.
//!     pub fn into_closure(self) -> impl Fn(u64) -> u64 {
//!         let y = self.y; // `let mut y` if the parameter was `mut y`
//!         {
//!             move |x| x.pow(y)
//!         }
//!     }
//! }
//!
//! const _: () = {
//!     // One assertion per factory argument and per closure argument and
//!     // result, spanned at that type: the only place where a type that
//!     // cannot travel is reported.
//!     fn __wire<T: ?Sized + __private::Wire>() {}
//!     const _: fn() = __wire::<u32>;
//!     const _: fn() = __wire::<u64>;
//!     const _: fn() = __wire::<u64>;
//!
//!     // `Serialize` and `Deserialize` as the tuple `(y,)`. Each field goes
//!     // through `__Field`, whose impls pick serde's by autoref
//!     // specialization, or an error-returning stand-in when the field's type
//!     // is not serde: so these impls never add errors of their own.
//!     struct __Field<T>(PhantomData<T>);
//!     trait __Travels { /* __encode, __decode */ }
//!     impl<T: Serialize + DeserializeOwned> __Travels for __Field<T> { /* serde */ }
//!     trait __Stays { /* __encode, __decode */ }
//!     impl<T> __Stays for &__Field<T> { /* Err(..) */ }
//!     impl __private::serde::Serialize for PowerFactory { /* ... */ }
//!     impl<'de> __private::serde::Deserialize<'de> for PowerFactory { /* ... */ }
//!
//!     const __NAME: &str = concat!(module_path!(), "::", "power_factory");
//!
//!     // `for<'__a>` defers the bound (trivial bounds are unstable): with a
//!     // result that cannot travel the impl does not apply, and only the
//!     // `__wire` assertion reports it.
//!     impl ::forkmap::Task<(u64,)> for PowerFactory
//!     where
//!         for<'__a> u64: __private::Wire,
//!     {
//!         type Output = u64;
//!         fn __describe(&self, setup: &mut Vec<u8>)
//!             -> Result<__private::Described, __private::EncodeError> {
//!             __private::describe_remote(self, __NAME, setup)
//!         }
//!     }
//!
//!     // The closure becomes a job the same way: `__IntoJob` where its types
//!     // travel, an error-returning `__Stuck` stand-in otherwise.
//!     struct __Closure<__C>(__C);
//!     impl<__C: FnMut(u64) -> u64 + 'static> __IntoJob for __Closure<__C>
//!     where
//!         for<'__a> (u64,): DeserializeOwned,
//!         for<'__a> u64: Serialize,
//!     {
//!         fn __into_job(self) -> Result<Box<dyn __private::Job>, String> {
//!             Ok(__private::job::<(u64,), __C>(self.0))
//!         }
//!     }
//!     impl<__C> __Stuck for &__Closure<__C> { /* Err(..) */ }
//!
//!     // What a worker runs to rebuild the closure from the bytes of a
//!     // `PowerFactory`.
//!     fn __start(setup: &[u8]) -> Result<Box<dyn __private::Job>, String> {
//!         let factory: PowerFactory = __private::decode_setup(setup)?;
//!         __Closure(factory.into_closure()).__into_job()
//!     }
//!
//!     #[__private::linkme::distributed_slice(__private::REMOTES)]
//!     #[linkme(crate = __private::linkme)]
//!     static __ENTRY: __private::RemoteEntry = __private::RemoteEntry {
//!         name: __NAME,
//!         start: __start,
//!     };
//! };
//! ```
//!
//! Names generated inside the `const _` block start with `__`, so they do not
//! shadow the user's types there; the struct and its impl carry the
//! function's `#[cfg]` attributes.
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
//! by the compiler, at that type, through `__private::Wire`'s message.

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
        Err(error) => fallback(item.into_token_stream(), error),
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
