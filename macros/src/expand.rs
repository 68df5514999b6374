//! The generated code, `quote!` only: the model has been validated.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens as _};
use syn::{spanned::Spanned as _, Ident};

use crate::ast::{unraw, Closure, Factory, Returns};

/// Expands a validated factory into its constructor, struct and registration.
pub(crate) fn factory(factory: &Factory<'_>) -> TokenStream {
    let Returns::Closure(closure) = &factory.returns else {
        unreachable!("valid.rs rejects factories that do not return a closure");
    };
    // What exists only with the factory exists only under its `cfg`s.
    let cfgs = factory
        .item
        .attrs
        .iter()
        .filter(|attr| attr.path().is_ident("cfg"));
    let cfgs = quote!(#(#cfgs)*);
    let constructor = constructor(factory);
    let strukt = strukt(factory, closure, &cfgs);
    let travel = travel(factory);
    let registration = registration(factory, closure);
    quote! {
        #constructor
        #strukt
        #cfgs
        const _: () = {
            #travel
            #registration
        };
    }
}

/// The parameters' names, each also the name of a field.
fn idents<'a>(factory: &'a Factory<'_>) -> impl Iterator<Item = &'a Ident> + Clone {
    factory
        .params
        .iter()
        .filter_map(|param| param.binding.as_ref().map(|binding| binding.ident))
}

/// Whether `attr` sets a lint's level: `allow`, `expect`, `warn`, `deny`
/// or `forbid`.
fn is_lint_level(attr: &syn::Attribute) -> bool {
    ["allow", "expect", "warn", "deny", "forbid"]
        .iter()
        .any(|level| attr.path().is_ident(level))
}

/// Lints reported only at a function as an item (its visibility, docs and
/// signature), which the constructor carries as the user's function would.
const ITEM_LINTS: &str = "missing_docs unreachable_pub clippy::must_use_candidate \
    clippy::too_many_arguments";

/// Lints that can be reported at the function as an item or in its body
/// (`dead_code`: an unused factory, or an unused item in its body), that
/// the user's function reports from what the split one cannot see (the
/// panic docs' of a body that panics), and groups: each is allowed on both
/// sides, since an expectation met on one side would be unmet on the other.
const EITHER_LINTS: &str = "dead_code clippy::missing_panics_doc clippy::missing_errors_doc \
    unused warnings nonstandard_style future_incompatible let_underscore rust_2018_idioms \
    rust_2021_compatibility rust_2024_compatibility clippy::all clippy::pedantic clippy::nursery \
    clippy::restriction clippy::style clippy::complexity clippy::perf clippy::correctness \
    clippy::suspicious clippy::cargo";

/// Where an expected lint is met: at the constructor, in the body, or on
/// either side (then it is only allowed, on both).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Item,
    Body,
    Either,
}

/// Where the lint `name` (`unused_mut`, `clippy::needless_return`) of an
/// `#[expect(..)]` on `factory` is met.
fn side_of(name: &str, factory: &Factory<'_>) -> Side {
    let listed = |list: &str| list.split_whitespace().any(|known| known == name);
    if listed(ITEM_LINTS) {
        Side::Item
    } else if listed(EITHER_LINTS) {
        Side::Either
    } else if name == "non_snake_case" {
        // At the name or a parameter if one breaks it, else in the body.
        match signature_breaks_snake_case(factory) {
            true => Side::Item,
            false => Side::Body,
        }
    } else {
        Side::Body
    }
}

/// Whether `ident` breaks the `non_snake_case` lint (has a capital).
fn breaks_snake_case(ident: &Ident) -> bool {
    unraw(ident).chars().any(char::is_uppercase)
}

/// Whether some parameter's name is not snake case.
fn has_non_snake_case_param(factory: &Factory<'_>) -> bool {
    idents(factory).any(breaks_snake_case)
}

/// Whether the factory's name or a parameter's is not snake case.
fn signature_breaks_snake_case(factory: &Factory<'_>) -> bool {
    breaks_snake_case(&factory.item.sig.ident) || has_non_snake_case_param(factory)
}

/// The lint levels of the factory as they apply to the constructor (`item`
/// true) or to the body (`item` false). An `#[expect(..)]` is split by
/// [`side_of`]: each lint is expected on its side and allowed on the other,
/// or allowed on both when it could be met on either.
fn lint_levels(factory: &Factory<'_>, item: bool) -> Vec<TokenStream> {
    let mut levels = Vec::new();
    for attr in factory.item.attrs.iter().filter(|attr| is_lint_level(attr)) {
        if !attr.path().is_ident("expect") {
            levels.push(quote!(#attr));
            continue;
        }
        let parser = syn::punctuated::Punctuated::<syn::Meta, syn::Token![,]>::parse_terminated;
        let Ok(metas) = attr.parse_args_with(parser) else {
            levels.push(quote!(#attr));
            continue;
        };
        let (mut here, mut there, mut reason) = (Vec::new(), Vec::new(), None);
        for meta in metas {
            match meta {
                syn::Meta::Path(lint) => {
                    let name = lint.to_token_stream().to_string().replace(' ', "");
                    match (side_of(&name, factory), item) {
                        (Side::Item, true) | (Side::Body, false) => here.push(lint),
                        _ => there.push(lint),
                    }
                }
                syn::Meta::NameValue(value) if value.path.is_ident("reason") => {
                    reason = Some(value)
                }
                _ => {}
            }
        }
        let span = attr.path().span();
        let reason = reason.map(|reason| quote!(, #reason));
        if !here.is_empty() {
            levels.push(quote_spanned!(span=> #[expect(#(#here),* #reason)]));
        }
        if !there.is_empty() {
            levels.push(quote_spanned!(span=> #[allow(#(#there),*)]));
        }
    }
    levels
}

/// The factory itself, now returning the struct of its arguments.
fn constructor(factory: &Factory<'_>) -> TokenStream {
    let item = factory.item;
    // The body moves to `into_closure`, which has the lint levels too.
    let attrs = item
        .attrs
        .iter()
        .filter(|attr| !is_lint_level(attr))
        .map(|attr| quote!(#attr))
        .chain(lint_levels(factory, true));
    let vis = &item.vis;
    let constness = &item.sig.constness;
    let fn_token = &item.sig.fn_token;
    let ident = &item.sig.ident;
    let struct_name = &factory.struct_name;
    let params = factory.params.iter().map(|param| {
        let attrs = &param.original.attrs;
        let ident = param.binding.as_ref().map(|binding| binding.ident);
        let ty = param.ty;
        quote!(#(#attrs)* #ident: #ty)
    });
    let fields = idents(factory);
    // Spanned at the user's braces, so that an unused factory is reported
    // as a function never used, as a plain function would be.
    let body = quote_spanned!(item.block.brace_token.span.join()=> {
        #struct_name { #(#fields),* }
    });
    quote! {
        #(#attrs)*
        #vis #constness #fn_token #ident(#(#params),*) -> #struct_name #body
    }
}

/// The struct that travels, the methods that turn it into the closure here,
/// and `Clone` and `Debug` where every field has them.
fn strukt(factory: &Factory<'_>, closure: &Closure<'_>, cfgs: &TokenStream) -> TokenStream {
    let item = factory.item;
    let vis = &item.vis;
    let name = factory.name();
    let struct_name = &factory.struct_name;
    let struct_doc = format!(
        "A [`{name}`] with its arguments: what travels to worker processes.\n\n\
         Pass it to a pool in place of a closure; each worker decodes it and runs the body \
         of [`{name}`] once per call to rebuild the closure, which then runs every item \
         the worker gets. [`call`](Self::call) and [`into_closure`](Self::into_closure) \
         build the closure in this process instead.\n\n\
         It implements `Clone` and `Debug` when every argument type of [`{name}`] does.\n\n\
         Generated by `#[remote]`.",
    );
    let into_closure_doc = format!(
        "Runs the body of [`{name}`] with these arguments and returns its closure, for use \
         in this process.",
    );
    let call_doc = format!(
        "Runs the body of [`{name}`] with a clone of these arguments and calls the closure \
         it returns once, in this process: for an `Fn` closure, the result a pool gives \
         for the same item.\n\n\
         Each call starts afresh: the statements before the closure run again, and the \
         state of an `FnMut` closure starts over. Use [`into_closure`](Self::into_closure) \
         to keep one closure.\n\n\
         Exists only when every argument type of [`{name}`] is `Clone`.",
    );
    let fields = factory.params.iter().filter_map(|param| {
        let ident = param.binding.as_ref()?.ident;
        let ty = param.ty;
        Some(quote!(#ident: #ty))
    });
    let returns = closure.ty;
    // The user's function itself, with its lint levels, inside
    // `into_closure`: its body means what it says there (no `self`, and the
    // factory's name is the factory's), and an `allow` on the factory
    // reaches it. Its signature is reported by the constructor's, once.
    let body = {
        let lints = lint_levels(factory, false);
        let mut sig = item.sig.clone();
        sig.constness = None;
        sig.ident = format_ident!(
            "__remote_{}",
            unraw(&item.sig.ident),
            span = Span::mixed_site()
        );
        let ident = &sig.ident;
        let block = &item.block;
        let fields = idents(factory);
        // Its name, from the factory's, and its parameters are the
        // factory's: the constructor reports them.
        let snake = signature_breaks_snake_case(factory).then(|| quote!(#[allow(non_snake_case)]));
        quote! {
            #(#lints)*
            #snake
            #[allow(clippy::too_many_arguments)]
            #sig #block
            #ident(#(self.#fields),*)
        }
    };
    let args: Vec<Ident> = (0..closure.inputs.len())
        .map(|i| format_ident!("arg{}", i))
        .collect();
    let inputs = &closure.inputs;
    let output = closure.output.map(|output| quote!(-> #output));
    let clone = clone(factory, cfgs);
    let debug = debug(factory, cfgs);
    // A parameter's name that breaks the naming lint is reported at the
    // factory, once, not again at its field.
    let snake = has_non_snake_case_param(factory).then(|| quote!(#[allow(non_snake_case)]));
    quote! {
        #cfgs
        #[doc = #struct_doc]
        #snake
        #vis struct #struct_name {
            #(#fields,)*
        }

        #cfgs
        impl #struct_name {
            #[doc = #into_closure_doc]
            #vis fn into_closure(self) -> #returns {
                #body
            }

            #[doc = #call_doc]
            #[allow(dead_code, clippy::too_many_arguments)]
            #vis fn call(&self, #(#args: #inputs),*) #output
            where
                for<'__a> Self: ::core::clone::Clone,
            {
                (::core::clone::Clone::clone(self).into_closure())(#(#args),*)
            }
        }

        #clone
        #debug
    }
}

/// `Clone`, field by field, bounded on every field's type.
///
/// Bounds under `for<'__a>` are not checked where the impl is declared
/// (trivial bounds are unstable): with a field that is not `Clone`, the impl
/// just does not apply, and neither does `call`.
fn clone(factory: &Factory<'_>, cfgs: &TokenStream) -> TokenStream {
    let struct_name = &factory.struct_name;
    let bounds = bounds(factory, quote!(::core::clone::Clone));
    let idents: Vec<_> = idents(factory).collect();
    quote! {
        #cfgs
        #[automatically_derived]
        impl ::core::clone::Clone for #struct_name
        where
            #(#bounds)*
        {
            #[inline]
            fn clone(&self) -> Self {
                #struct_name {
                    #(#idents: ::core::clone::Clone::clone(&self.#idents),)*
                }
            }
        }
    }
}

/// `for<'__a> Type: Trait,` for every argument's type.
fn bounds(factory: &Factory<'_>, trait_path: TokenStream) -> Vec<TokenStream> {
    factory
        .params
        .iter()
        .map(|param| {
            let ty = param.ty;
            quote!(for<'__a> #ty: #trait_path,)
        })
        .collect()
}

/// `Debug` as derived (`PowerFactory { y: 2 }`), bounded like `Clone`.
fn debug(factory: &Factory<'_>, cfgs: &TokenStream) -> TokenStream {
    let struct_name = &factory.struct_name;
    let struct_string = unraw(struct_name);
    let bounds = bounds(factory, quote!(::core::fmt::Debug));
    let idents: Vec<_> = idents(factory).collect();
    let names = idents.iter().map(|ident| unraw(ident));
    quote! {
        #cfgs
        #[automatically_derived]
        impl ::core::fmt::Debug for #struct_name
        where
            #(#bounds)*
        {
            fn fmt(&self, formatter: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                formatter
                    .debug_struct(#struct_string)
                    #(.field(#names, &self.#idents))*
                    .finish()
            }
        }
    }
}

/// `Serialize` and `Deserialize` for the struct, as a tuple of its fields.
///
/// Each field goes through `__Field`, which picks serde's impl by autoref
/// specialization when the field's type has one and an error-returning
/// stand-in when it does not. So a bad argument type fails to compile only
/// through its spanned `__assert_travels` assertion, which points at the
/// argument, and not through a cascade of unsatisfied bounds inside the
/// generated impls.
fn travel(factory: &Factory<'_>) -> TokenStream {
    let krate = &factory.krate;
    let serde = quote!(#krate::__private::serde);
    let struct_name = &factory.struct_name;
    let len = factory.params.len();
    let expecting = format!("the arguments of `{}`", factory.name());
    let tys: Vec<_> = factory.params.iter().map(|param| param.ty).collect();
    let assertions = tys.iter().map(|ty| {
        let span = Span::call_site().located_at(ty.span());
        quote_spanned!(span=> const _: fn() = __assert_travels::<#ty>;)
    });
    let idents: Vec<_> = idents(factory).collect();
    let indices = 0..len;
    quote! {
        fn __assert_travels<T: ?::core::marker::Sized + #krate::__private::Travel>() {}
        #(#assertions)*

        struct __Field<T>(::core::marker::PhantomData<T>);

        trait __Travels {
            type Value;
            fn __encode<S: #serde::ser::SerializeTuple>(
                &self,
                value: &Self::Value,
                tuple: &mut S,
            ) -> ::core::result::Result<(), S::Error>;
            fn __serialize<S: #serde::Serializer>(
                &self,
                value: &Self::Value,
                serializer: S,
            ) -> ::core::result::Result<S::Ok, S::Error>;
            fn __decode<'de, A: #serde::de::SeqAccess<'de>>(
                &self,
                seq: &mut A,
                index: ::core::primitive::usize,
                expected: &dyn #serde::de::Expected,
            ) -> ::core::result::Result<Self::Value, A::Error>;
        }

        impl<T: #serde::Serialize + #serde::de::DeserializeOwned> __Travels for __Field<T> {
            type Value = T;
            fn __encode<S: #serde::ser::SerializeTuple>(
                &self,
                value: &T,
                tuple: &mut S,
            ) -> ::core::result::Result<(), S::Error> {
                tuple.serialize_element(value)
            }
            fn __serialize<S: #serde::Serializer>(
                &self,
                value: &T,
                serializer: S,
            ) -> ::core::result::Result<S::Ok, S::Error> {
                #serde::Serialize::serialize(value, serializer)
            }
            fn __decode<'de, A: #serde::de::SeqAccess<'de>>(
                &self,
                seq: &mut A,
                index: ::core::primitive::usize,
                expected: &dyn #serde::de::Expected,
            ) -> ::core::result::Result<T, A::Error> {
                match seq.next_element()? {
                    ::core::option::Option::Some(value) => ::core::result::Result::Ok(value),
                    ::core::option::Option::None => ::core::result::Result::Err(
                        #serde::de::Error::invalid_length(index, expected),
                    ),
                }
            }
        }

        // Chosen only for a type that cannot travel, which `__assert_travels`
        // has already rejected: never part of a program that compiles.
        trait __Stays {
            type Value;
            fn __encode<S: #serde::ser::SerializeTuple>(
                &self,
                value: &Self::Value,
                tuple: &mut S,
            ) -> ::core::result::Result<(), S::Error>;
            fn __serialize<S: #serde::Serializer>(
                &self,
                value: &Self::Value,
                serializer: S,
            ) -> ::core::result::Result<S::Ok, S::Error>;
            fn __decode<'de, A: #serde::de::SeqAccess<'de>>(
                &self,
                seq: &mut A,
                index: ::core::primitive::usize,
                expected: &dyn #serde::de::Expected,
            ) -> ::core::result::Result<Self::Value, A::Error>;
        }

        impl<T> __Stays for &__Field<T> {
            type Value = T;
            fn __encode<S: #serde::ser::SerializeTuple>(
                &self,
                _: &T,
                _: &mut S,
            ) -> ::core::result::Result<(), S::Error> {
                ::core::result::Result::Err(#serde::ser::Error::custom(
                    "this type cannot travel to a worker process",
                ))
            }
            fn __serialize<S: #serde::Serializer>(
                &self,
                _: &T,
                _: S,
            ) -> ::core::result::Result<S::Ok, S::Error> {
                ::core::result::Result::Err(#serde::ser::Error::custom(
                    "this type cannot travel to a worker process",
                ))
            }
            fn __decode<'de, A: #serde::de::SeqAccess<'de>>(
                &self,
                _: &mut A,
                _: ::core::primitive::usize,
                _: &dyn #serde::de::Expected,
            ) -> ::core::result::Result<T, A::Error> {
                ::core::result::Result::Err(#serde::de::Error::custom(
                    "this type cannot travel to a worker process",
                ))
            }
        }

        #[automatically_derived]
        impl #serde::Serialize for #struct_name {
            fn serialize<__S: #serde::Serializer>(
                &self,
                serializer: __S,
            ) -> ::core::result::Result<__S::Ok, __S::Error> {
                let mut tuple = #serde::Serializer::serialize_tuple(serializer, #len)?;
                #(
                    (&__Field::<#tys>(::core::marker::PhantomData))
                        .__encode(&self.#idents, &mut tuple)?;
                )*
                #serde::ser::SerializeTuple::end(tuple)
            }
        }

        #[automatically_derived]
        impl<'de> #serde::Deserialize<'de> for #struct_name {
            fn deserialize<__D: #serde::Deserializer<'de>>(
                deserializer: __D,
            ) -> ::core::result::Result<Self, __D::Error> {
                struct __Visitor;

                impl<'de> #serde::de::Visitor<'de> for __Visitor {
                    type Value = #struct_name;

                    fn expecting(
                        &self,
                        formatter: &mut ::core::fmt::Formatter<'_>,
                    ) -> ::core::fmt::Result {
                        formatter.write_str(#expecting)
                    }

                    fn visit_seq<__A: #serde::de::SeqAccess<'de>>(
                        self,
                        mut seq: __A,
                    ) -> ::core::result::Result<#struct_name, __A::Error> {
                        ::core::result::Result::Ok(#struct_name {
                            #(
                                #idents: (&__Field::<#tys>(::core::marker::PhantomData))
                                    .__decode(&mut seq, #indices, &self)?,
                            )*
                        })
                    }
                }

                #serde::Deserializer::deserialize_tuple(deserializer, #len, __Visitor)
            }
        }
    }
}

/// The `Task` impl and the entry that lets a worker find the factory by name.
///
/// The closure becomes a job through `__Closure`, which, like `__Field`,
/// falls back to a stand-in when the closure's argument or result types
/// cannot travel, so that only their spanned `__assert_travels` assertions
/// report it.
fn registration(factory: &Factory<'_>, closure: &Closure<'_>) -> TokenStream {
    let krate = &factory.krate;
    let private = quote!(#krate::__private);
    let serde = quote!(#private::serde);
    let struct_name = &factory.struct_name;
    let name = factory.name();
    let code = code_hash(factory);
    let inputs = &closure.inputs;
    let args = quote!((#(#inputs,)*));
    let output = match closure.output {
        Some(output) => quote!(#output),
        None => quote!(()),
    };
    let assertions = inputs.iter().copied().chain(closure.output).map(|ty| {
        let span = Span::call_site().located_at(ty.span());
        quote_spanned!(span=> const _: fn() = __assert_travels::<#ty>;)
    });
    let job = quote!(#private::Job);
    // Bounds under `for<'__a>` are not checked where the impl is declared
    // (trivial bounds are unstable): the impl just does not apply when they
    // fail.
    quote! {
        #(#assertions)*

        const __NAME: &::core::primitive::str =
            ::core::concat!(::core::module_path!(), "::", #name);
        // Two factories of one name can share a module path (each inside its
        // own function): where `#[remote]` stands tells them apart, and
        // where that is one place (a macro that makes several), their code.
        const __KEY: &::core::primitive::str = ::core::concat!(
            ::core::module_path!(),
            "::",
            #name,
            "@",
            ::core::line!(),
            ":",
            ::core::column!(),
            "#",
            #code
        );

        // What a call encodes for each item: the closure's arguments, through
        // `__Field`, so that an argument type that cannot travel, which its
        // `__assert_travels` assertion reports, adds no error here or at the
        // factory's uses. `pub` as `Task`'s associated type must be, and
        // unreachable from outside this block.
        #[allow(unreachable_pub)]
        pub struct __Items(#args);

        impl #serde::Serialize for __Items {
            fn serialize<__S: #serde::Serializer>(
                &self,
                serializer: __S,
            ) -> ::core::result::Result<__S::Ok, __S::Error> {
                (&__Field::<#args>(::core::marker::PhantomData)).__serialize(&self.0, serializer)
            }
        }

        // Applies only when the result can travel: otherwise its
        // `__assert_travels` assertion says so, and `Task`'s bounds on
        // `Output` add nothing.
        #[automatically_derived]
        impl #krate::Task<#args> for #struct_name
        where
            for<'__a> #output: #private::Travel,
        {
            type Output = #output;
            type __Args = __Items;

            fn __args(args: #args) -> __Items {
                __Items(args)
            }

            fn __describe(
                &self,
                setup: &mut ::std::vec::Vec<::core::primitive::u8>,
            ) -> ::core::result::Result<#private::Described, #private::EncodeError> {
                #private::describe_remote(self, __KEY, __NAME, setup)
            }
        }

        struct __Closure<__C>(__C);

        trait __IntoJob {
            fn __into_job(self) -> ::core::result::Result<#job, ::std::string::String>;
        }

        impl<__C: ::core::ops::FnMut(#(#inputs),*) -> #output + 'static> __IntoJob for __Closure<__C>
        where
            for<'__a> #args: #serde::de::DeserializeOwned,
            for<'__a> #output: #serde::Serialize,
        {
            fn __into_job(self) -> ::core::result::Result<#job, ::std::string::String> {
                ::core::result::Result::Ok(#private::job::<#args, __C>(self.0))
            }
        }

        // Chosen only when `__assert_travels` has already rejected a type.
        trait __Stuck {
            fn __into_job(self) -> ::core::result::Result<#job, ::std::string::String>;
        }

        impl<__C> __Stuck for &__Closure<__C> {
            fn __into_job(self) -> ::core::result::Result<#job, ::std::string::String> {
                ::core::result::Result::Err(<::std::string::String as ::core::convert::From<
                    &::core::primitive::str,
                >>::from(
                    "this closure's arguments or result cannot travel to a worker process",
                ))
            }
        }

        fn __start(
            setup: &[::core::primitive::u8],
        ) -> ::core::result::Result<#job, ::std::string::String> {
            let factory: #struct_name = #private::decode_setup(setup)?;
            __Closure(factory.into_closure()).__into_job()
        }

        // No `allow(unsafe_code)` here, which a crate that forbids unsafe
        // code would refuse: the lint does not see linkme's link section in
        // another crate than forkmap.
        #[#private::linkme::distributed_slice(#private::REMOTES)]
        #[linkme(crate = #private::linkme)]
        static __ENTRY: #private::RemoteEntry = #private::RemoteEntry {
            key: __KEY,
            name: __NAME,
            start: __start,
        };
    }
}

/// A hash of the factory's code, as text: it tells apart factories that one
/// macro invocation makes, which share a name and a place.
fn code_hash(factory: &Factory<'_>) -> String {
    let mut hasher = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(&factory.item.to_token_stream().to_string(), &mut hasher);
    format!("{:016x}", std::hash::Hasher::finish(&hasher))
}

/// What stands in for a factory that has errors: the function with its
/// signature and a closure of the declared type that is also `Copy + Send +
/// 'static`, so that the factory's uses compile (a pool accepts it) and the
/// mistake is reported once, by `valid.rs`, not again at every call. `None`
/// when the signature itself cannot stand (no closure type, a `self`
/// receiver, a variadic): then the user's item is emitted unchanged.
pub(crate) fn stand_in(factory: &Factory<'_>) -> Option<TokenStream> {
    let Returns::Closure(closure) = &factory.returns else {
        return None;
    };
    let item = factory.item;
    let sig = &item.sig;
    if factory.receiver.is_some() || sig.variadic.is_some() {
        return None;
    }
    let attrs = &item.attrs;
    let vis = &item.vis;
    let ident = &sig.ident;
    let mut generics = sig.generics.clone();
    let params: Vec<_> = generics
        .type_params()
        .map(|param| param.ident.clone())
        .collect();
    let where_clause = generics.make_where_clause();
    for param in params {
        where_clause
            .predicates
            .push(syn::parse_quote!(#param: 'static));
    }
    let (_, _, where_clause) = generics.split_for_impl();
    let params = &generics.params;
    // `#[serde(..)]` on an argument, already reported, is not an attribute
    // the compiler knows: it would be reported again.
    let mut inputs = sig.inputs.clone();
    for input in &mut inputs {
        if let syn::FnArg::Typed(param) = input {
            param.attrs.retain(|attr| !attr.path().is_ident("serde"));
        }
    }
    let args = &closure.inputs;
    let output = closure.output.map(|output| quote!(-> #output));
    Some(quote! {
        #(#attrs)*
        #[allow(unused_variables)]
        #vis fn #ident<#params>(#inputs)
            -> impl ::core::ops::Fn(#(#args),*) #output
                + ::core::marker::Copy + ::core::marker::Send + 'static
        #where_clause
        {
            |#(_: #args),*| ::core::unreachable!()
        }
    })
}
