//! A model of the factory function, keeping the original syn nodes for spans.
//!
//! Building the model never fails: whatever does not fit is kept as written so
//! that `valid.rs` can point at it.

use proc_macro2::Span;
use syn::{
    FnArg, Ident, ItemFn, Pat, PatType, Receiver, ReturnType, TraitBound, Type, TypeParamBound,
};

use crate::attr::Options;

/// A function under `#[remote]`.
pub(crate) struct Factory<'a> {
    /// The function as the user wrote it.
    pub(crate) item: &'a ItemFn,
    /// The struct that calling the factory returns.
    pub(crate) struct_name: Ident,
    /// Where generated code finds the runtime crate.
    pub(crate) krate: syn::Path,
    /// The parameters, each to become a field of the struct.
    pub(crate) params: Vec<Param<'a>>,
    /// A `self` parameter, if the user wrote one.
    pub(crate) receiver: Option<&'a Receiver>,
    /// What the return type says about the closure.
    pub(crate) returns: Returns<'a>,
}

/// One parameter of the factory.
pub(crate) struct Param<'a> {
    /// The parameter as written (attributes, pattern, type).
    pub(crate) original: &'a PatType,
    /// The binding, when the pattern is a plain identifier (`x` or `mut x`).
    pub(crate) binding: Option<Binding<'a>>,
    /// The parameter's type: the field's type.
    pub(crate) ty: &'a Type,
}

/// A parameter bound to a plain identifier.
pub(crate) struct Binding<'a> {
    /// The parameter's name: the field's name.
    pub(crate) ident: &'a Ident,
}

/// The return type of the factory.
pub(crate) enum Returns<'a> {
    /// `impl Fn(..) -> ..` (or `FnMut`, or `FnOnce`) with extra bounds.
    Closure(Closure<'a>),
    /// An `impl Trait` with no `Fn`-family bound, or with several.
    ImplWithout(&'a Type),
    /// Any other type.
    Other(&'a Type),
    /// No `-> Type` at all; the span is the parameter list's.
    Missing(Span),
}

/// The signature of the returned closure, read from `impl Fn(A, B) -> O`.
pub(crate) struct Closure<'a> {
    /// The whole return type, with any extra bounds (`+ Send + 'static`).
    pub(crate) ty: &'a Type,
    /// The `Fn`, `FnMut` or `FnOnce` identifier in the bound.
    pub(crate) trait_ident: &'a Ident,
    /// Which of the three it is.
    pub(crate) kind: Kind,
    /// The argument types.
    pub(crate) inputs: Vec<&'a Type>,
    /// The output type; `None` for `()`.
    pub(crate) output: Option<&'a Type>,
}

/// The `Fn`-family trait of the returned closure.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Fn,
    FnMut,
    FnOnce,
}

impl<'a> Factory<'a> {
    /// Models `item`, the function under `#[remote(options)]`.
    pub(crate) fn from_syn(item: &'a ItemFn, options: &Options) -> Self {
        let mut params = Vec::new();
        let mut receiver = None;
        for input in &item.sig.inputs {
            match input {
                FnArg::Receiver(r) => receiver = Some(r),
                FnArg::Typed(original) => params.push(Param::from_syn(original)),
            }
        }
        let struct_name = options.name.clone().unwrap_or_else(|| {
            Ident::new(&upper_camel_case(&item.sig.ident), item.sig.ident.span())
        });
        Factory {
            item,
            struct_name,
            krate: options.krate(),
            params,
            receiver,
            returns: Returns::from_syn(&item.sig.output, item.sig.paren_token.span.join()),
        }
    }

    /// The factory's name as a string, without any `r#`.
    pub(crate) fn name(&self) -> String {
        unraw(&self.item.sig.ident)
    }
}

impl<'a> Param<'a> {
    fn from_syn(original: &'a PatType) -> Self {
        let binding = match &*original.pat {
            Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none() => {
                Some(Binding { ident: &pat.ident })
            }
            _ => None,
        };
        Param {
            original,
            binding,
            ty: &original.ty,
        }
    }
}

impl<'a> Returns<'a> {
    fn from_syn(output: &'a ReturnType, params_span: Span) -> Self {
        let ty = match output {
            ReturnType::Default => return Returns::Missing(params_span),
            ReturnType::Type(_, ty) => &**ty,
        };
        let Type::ImplTrait(impl_trait) = peel(ty) else {
            return Returns::Other(ty);
        };
        let mut closures = impl_trait.bounds.iter().filter_map(|bound| match bound {
            TypeParamBound::Trait(bound) => Closure::from_bound(ty, bound),
            _ => None,
        });
        match (closures.next(), closures.next()) {
            (Some(closure), None) => Returns::Closure(closure),
            _ => Returns::ImplWithout(ty),
        }
    }
}

impl<'a> Closure<'a> {
    /// Reads `bound` if it is `Fn(..) -> ..`, `FnMut(..) -> ..` or
    /// `FnOnce(..) -> ..`.
    fn from_bound(ty: &'a Type, bound: &'a TraitBound) -> Option<Self> {
        let segment = bound.path.segments.last()?;
        let kind = match segment.ident.to_string().as_str() {
            "Fn" => Kind::Fn,
            "FnMut" => Kind::FnMut,
            "FnOnce" => Kind::FnOnce,
            _ => return None,
        };
        let syn::PathArguments::Parenthesized(args) = &segment.arguments else {
            return None;
        };
        Some(Closure {
            ty,
            trait_ident: &segment.ident,
            kind,
            inputs: args.inputs.iter().collect(),
            output: match &args.output {
                ReturnType::Default => None,
                ReturnType::Type(_, ty) => Some(&**ty),
            },
        })
    }
}

/// Removes the invisible groups and parentheses around a type.
pub(crate) fn peel(mut ty: &Type) -> &Type {
    loop {
        match ty {
            Type::Group(group) => ty = &group.elem,
            Type::Paren(paren) => ty = &paren.elem,
            _ => return ty,
        }
    }
}

/// `power_factory` → `PowerFactory`; a name that would not start with a
/// letter (`_1`), or would be the keyword `Self` (`self_`), gets a `Remote`
/// prefix.
fn upper_camel_case(ident: &Ident) -> String {
    let name: String = unraw(ident)
        .split('_')
        .flat_map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().chain(chars))
                .into_iter()
                .flatten()
        })
        .collect();
    if name.starts_with(|c: char| c.is_alphabetic()) && name != "Self" {
        name
    } else {
        format!("Remote{name}")
    }
}

/// An identifier as a string, without any `r#`.
pub(crate) fn unraw(ident: &Ident) -> String {
    let name = ident.to_string();
    match name.strip_prefix("r#") {
        Some(name) => name.to_owned(),
        None => name,
    }
}
