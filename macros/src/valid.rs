//! Checks on the model: every way a function can fail to be a factory, each
//! reported at the offending token with what to do instead.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::{
    punctuated::Punctuated, Block, Expr, GenericArgument, Lifetime, PathArguments, ReturnType,
    Stmt, Token, Type, TypeParamBound,
};

use crate::ast::{Closure, Factory, Kind, Returns};
use crate::Errors;

impl Factory<'_> {
    /// Reports every problem found, combined into one error.
    pub(crate) fn validate(&self) -> syn::Result<()> {
        let mut errors = Errors::default();
        self.check_signature(&mut errors);
        self.check_params(&mut errors);
        self.check_returns(&mut errors);
        // With a return type that is not a closure, the tail is wrong for the
        // same reason: one error is enough.
        if let Returns::Closure(_) = self.returns {
            check_tail(&self.item.block, &mut errors);
        }
        errors.finish()
    }

    fn check_signature(&self, errors: &mut Errors) {
        let sig = &self.item.sig;
        if let Some(asyncness) = &sig.asyncness {
            errors.push(
                asyncness,
                "a #[remote] factory cannot be `async`: workers call it to build the closure \
                 and cannot await it; remove `async` and do the setup synchronously",
            );
        }
        if let Some(unsafety) = &sig.unsafety {
            errors.push(
                unsafety,
                "a #[remote] factory cannot be an `unsafe fn`: workers call it with no caller \
                 to uphold its contract; make it a safe fn and use `unsafe` blocks in its body",
            );
        }
        if let Some(abi) = &sig.abi {
            errors.push(
                abi,
                "a #[remote] factory cannot have an `extern` ABI: workers call it as a Rust \
                 function; remove the `extern`",
            );
        }
        if let Some(variadic) = &sig.variadic {
            errors.push(
                variadic,
                "a #[remote] factory cannot be variadic: each argument becomes a field of the \
                 struct that travels to the workers",
            );
        }
        let generics = &sig.generics;
        if !generics.params.is_empty() {
            let name = &sig.ident;
            errors.push(
                generics,
                format!(
                    "a #[remote] factory cannot be generic: a worker finds the factory by name \
                     and rebuilds its closure from bytes, so every type must be concrete where \
                     the factory is defined; write one factory per type (`{name}_u64`, \
                     `{name}_f64`), or take the value as an argument of a concrete serde type, \
                     such as an enum of the types you need"
                ),
            );
        }
        if let Some(where_clause) = &generics.where_clause {
            errors.push(
                where_clause,
                "a #[remote] factory cannot have a `where` clause: a worker must know the \
                 concrete types to rebuild the closure from bytes; remove it",
            );
        }
        let name = self.struct_name.to_string();
        if PRELUDE.split_whitespace().any(|prelude| prelude == name) {
            errors.push(
                &self.struct_name,
                format_args!(
                    "the struct this #[remote] factory makes would be called `{name}`, and hide \
                     the prelude's `{name}` in this module: rename the factory, or name the \
                     struct with `#[remote(name = {name}Factory)]`"
                ),
            );
        }
    }

    fn check_params(&self, errors: &mut Errors) {
        if let Some(receiver) = self.receiver {
            errors.push(
                receiver,
                "a #[remote] factory cannot take `self`: it must be a free function whose \
                 arguments travel to the workers; move it out of the `impl` and pass what it \
                 needs as arguments",
            );
        }
        for param in &self.params {
            for attr in &param.original.attrs {
                let path = attr.path();
                if path.is_ident("cfg") || (path.is_ident("cfg_attr") && gates_or_encodes(attr)) {
                    errors.push(
                        attr,
                        "a #[remote] factory argument cannot be `#[cfg]`-gated: it is a field of \
                         the struct that travels to the workers; gate the whole factory, or take \
                         an `Option`",
                    );
                } else if path.is_ident("serde") {
                    errors.push(
                        attr,
                        "`#[serde(..)]` does not apply to a #[remote] factory argument: give the \
                         argument a type that encodes as you want (`serde_bytes::ByteBuf` for \
                         bytes, or a type of your own with `#[derive(Serialize, Deserialize)]`)",
                    );
                }
            }
            if param.binding.is_none() {
                errors.push(
                    &param.original.pat,
                    "a #[remote] factory parameter must be a plain name (`x` or `mut x`), since \
                     it becomes a field of the struct that travels to the workers; take the \
                     value whole and destructure it in the body",
                );
            }
            check_owned(
                param.ty,
                errors,
                "a #[remote] factory argument cannot be `impl Trait`: it becomes a field of the \
                 struct that travels to the workers, so it needs a concrete type; name the type",
                "a #[remote] factory argument cannot borrow: it travels to worker processes and \
                 must be owned; take `String` instead of `&str`, `Vec<T>` instead of `&[T]`",
            );
        }
    }

    fn check_returns(&self, errors: &mut Errors) {
        match &self.returns {
            Returns::Missing(span) => errors.push_span(
                *span,
                "a #[remote] factory must return the closure it builds: add \
                 `-> impl Fn(..) -> ..` after the parameters (or `-> impl FnMut(..) -> ..` for \
                 state that changes between items)",
            ),
            Returns::Other(ty) => errors.push(
                ty,
                "a #[remote] factory must return `impl Fn(..) -> ..` (or `impl FnMut(..) -> ..` \
                 for state that changes between items): workers rebuild the closure by running \
                 the factory again, so return the closure itself, unboxed",
            ),
            Returns::ImplWithout(ty) => errors.push(
                ty,
                "the `impl` type returned by a #[remote] factory needs exactly one `Fn(..) -> ..` \
                 or `FnMut(..) -> ..` bound, saying how workers call the closure",
            ),
            Returns::Closure(closure) => check_closure(closure, errors),
        }
    }
}

/// Whether a `#[cfg_attr(predicate, attributes..)]` on an argument holds a
/// `cfg` or a `serde` attribute (not only lint levels, which are welcome).
fn gates_or_encodes(attr: &syn::Attribute) -> bool {
    let parsed = attr.parse_args_with(|input: syn::parse::ParseStream<'_>| {
        let _predicate: syn::Meta = input.parse()?;
        let _: syn::Token![,] = input.parse()?;
        syn::punctuated::Punctuated::<syn::Meta, syn::Token![,]>::parse_terminated(input)
    });
    match parsed {
        Ok(attrs) => attrs.iter().any(|meta| {
            let path = meta.path();
            path.is_ident("cfg") || path.is_ident("cfg_attr") || path.is_ident("serde")
        }),
        Err(_) => true,
    }
}

/// The most arguments a closure a pool calls may take (`CallWith` is
/// implemented up to this many).
const MAX_ARGUMENTS: usize = 8;

/// The names of the types, traits and variants of Rust's prelude: a struct
/// of one of these names would hide the prelude's in the factory's module.
const PRELUDE: &str = "AsMut AsRef Box Clone Copy Default DoubleEndedIterator Drop Eq Err \
    ExactSizeIterator Extend Fn FnMut FnOnce From FromIterator Future Into IntoFuture \
    IntoIterator Iterator None Ok Option Ord PartialEq PartialOrd Result Send Sized Some String \
    Sync ToOwned ToString TryFrom TryInto Unpin Vec";

fn check_closure(closure: &Closure<'_>, errors: &mut Errors) {
    if closure.kind == Kind::FnOnce {
        errors.push(
            closure.trait_ident,
            "a #[remote] factory cannot return `impl FnOnce`: a worker calls the closure once per \
             item; return `impl Fn`, or `impl FnMut` for state that changes between items",
        );
    }
    if closure.inputs.len() > MAX_ARGUMENTS {
        errors.push(
            closure.ty,
            format_args!(
                "a #[remote] factory's closure takes at most {MAX_ARGUMENTS} arguments, and this \
                 one takes {}: take a tuple instead, `impl Fn((A, B, ..)) -> ..`",
                closure.inputs.len()
            ),
        );
    }
    for input in &closure.inputs {
        check_owned(
            input,
            errors,
            "the closure's arguments cannot be `impl Trait`: name the type of the items",
            "the closure's arguments cannot borrow: each item is decoded in the worker, so it \
             must be owned; take `String` instead of `&str`, `Vec<T>` instead of `&[T]`",
        );
    }
    if let Some(output) = closure.output {
        check_owned(
            output,
            errors,
            "the closure's result cannot be `impl Trait`: it travels back to the parent \
             process, so name its type",
            "the closure's result cannot borrow: it travels back to the parent process, so it \
             must be owned; return `String` instead of `&str`",
        );
    }
}

/// Reports the first `impl Trait` and the first borrow inside `ty`.
fn check_owned(ty: &Type, errors: &mut Errors, impl_trait: &str, borrowed: &str) {
    let mut found = Found::default();
    found.visit(ty);
    if let Some(tokens) = found.impl_trait {
        errors.push(tokens, impl_trait);
    }
    if let Some(tokens) = found.borrow {
        errors.push(tokens, borrowed);
    }
}

/// The first `impl Trait` and the first borrow (a reference or a lifetime
/// other than `'static`) found in a type, as tokens to point at.
#[derive(Default)]
struct Found {
    impl_trait: Option<TokenStream>,
    borrow: Option<TokenStream>,
}

impl Found {
    fn visit(&mut self, ty: &Type) {
        match ty {
            Type::ImplTrait(ty) => {
                self.impl_trait.get_or_insert_with(|| ty.to_token_stream());
            }
            Type::Reference(reference) => {
                self.borrow
                    .get_or_insert_with(|| reference.to_token_stream());
            }
            Type::Array(array) => self.visit(&array.elem),
            Type::Group(group) => self.visit(&group.elem),
            Type::Paren(paren) => self.visit(&paren.elem),
            Type::Ptr(ptr) => self.visit(&ptr.elem),
            Type::Slice(slice) => self.visit(&slice.elem),
            Type::Tuple(tuple) => tuple.elems.iter().for_each(|elem| self.visit(elem)),
            Type::Path(path) => {
                if let Some(qself) = &path.qself {
                    self.visit(&qself.ty);
                }
                for segment in &path.path.segments {
                    self.visit_arguments(&segment.arguments);
                }
            }
            Type::TraitObject(object) => self.visit_bounds(&object.bounds),
            _ => {}
        }
    }

    fn visit_arguments(&mut self, arguments: &PathArguments) {
        match arguments {
            PathArguments::AngleBracketed(arguments) => {
                for argument in &arguments.args {
                    match argument {
                        GenericArgument::Type(ty) => self.visit(ty),
                        GenericArgument::Lifetime(lifetime) => self.visit_lifetime(lifetime),
                        GenericArgument::AssocType(assoc) => self.visit(&assoc.ty),
                        _ => {}
                    }
                }
            }
            PathArguments::Parenthesized(arguments) => {
                arguments.inputs.iter().for_each(|input| self.visit(input));
                if let ReturnType::Type(_, output) = &arguments.output {
                    self.visit(output);
                }
            }
            PathArguments::None => {}
        }
    }

    fn visit_bounds(&mut self, bounds: &Punctuated<TypeParamBound, Token![+]>) {
        for bound in bounds {
            match bound {
                TypeParamBound::Trait(bound) => {
                    for segment in &bound.path.segments {
                        self.visit_arguments(&segment.arguments);
                    }
                }
                TypeParamBound::Lifetime(lifetime) => self.visit_lifetime(lifetime),
                _ => {}
            }
        }
    }

    fn visit_lifetime(&mut self, lifetime: &Lifetime) {
        if lifetime.ident != "static" {
            self.borrow
                .get_or_insert_with(|| lifetime.to_token_stream());
        }
    }
}

/// Checks that the body ends in the closure it returns.
fn check_tail(block: &Block, errors: &mut Errors) {
    if ends_in_closure(block) {
        return;
    }
    const MESSAGE: &str = "a #[remote] factory must end in the closure it returns, such as \
                           `move |x| x.pow(y)`: workers rebuild the closure by running this body";
    match block.stmts.last() {
        Some(last) => errors.push(last, MESSAGE),
        None => errors.push_span(block.brace_token.span.join(), MESSAGE),
    }
}

fn ends_in_closure(block: &Block) -> bool {
    match block.stmts.last() {
        Some(Stmt::Expr(expr, None)) => is_closure(expr),
        Some(Stmt::Expr(Expr::Return(ret), _)) => ret.expr.as_deref().is_some_and(is_closure),
        _ => false,
    }
}

fn is_closure(expr: &Expr) -> bool {
    match expr {
        Expr::Closure(_) => true,
        Expr::Paren(paren) => is_closure(&paren.expr),
        Expr::Group(group) => is_closure(&group.expr),
        Expr::Block(block) if block.label.is_none() => ends_in_closure(&block.block),
        Expr::Return(ret) => ret.expr.as_deref().is_some_and(is_closure),
        _ => false,
    }
}

impl Errors {
    fn push(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        self.add(syn::Error::new_spanned(tokens, message));
    }

    fn push_span(&mut self, span: Span, message: impl std::fmt::Display) {
        self.add(syn::Error::new(span, message));
    }
}
