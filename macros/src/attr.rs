//! The options of `#[remote(...)]`.

use proc_macro2::{Span, TokenStream};
use syn::{parse::Parser as _, Ident, Path, Result};

use crate::Errors;

/// What the user wrote between the parentheses of `#[remote(...)]`.
#[derive(Default)]
pub(crate) struct Options {
    /// `crate = path::to::forkmap`: where generated code finds the runtime.
    pub(crate) krate: Option<Path>,
    /// `name = StructName`: the name of the struct the factory returns.
    pub(crate) name: Option<Ident>,
}

const VALID: &str = "`crate = path::to::forkmap` or `name = StructName`";

impl Options {
    /// Parses the attribute's arguments, reporting every bad option at once.
    pub(crate) fn parse(args: TokenStream) -> Result<Self> {
        let mut options = Options::default();
        let mut errors = Errors::default();
        let parser = syn::meta::parser(|meta| {
            let error = if meta.path.is_ident("crate") {
                let path: Path = meta.value()?.parse()?;
                set(&mut options.krate, path, &meta.path, "crate")
            } else if meta.path.is_ident("name") {
                let name: Ident = meta.value()?.parse()?;
                set(&mut options.name, name, &meta.path, "name")
            } else {
                // Skip the value, if any, so the next option still parses.
                if meta.input.peek(syn::Token![=]) {
                    meta.value()?.parse::<syn::Expr>()?;
                }
                Some(meta.error(format_args!(
                    "unknown #[remote] option `{}`: the valid options are {VALID}",
                    path_to_string(&meta.path),
                )))
            };
            if let Some(error) = error {
                errors.add(error);
            }
            Ok(())
        });
        if let Err(error) = parser.parse2(args) {
            errors.add(error);
        }
        errors.finish().map(|()| options)
    }

    /// The path generated code uses for the runtime crate: `::forkmap` unless
    /// `crate = ...` says otherwise.
    pub(crate) fn krate(&self) -> Path {
        self.krate.clone().unwrap_or_else(|| {
            let mut path = Path::from(Ident::new("forkmap", Span::call_site()));
            path.leading_colon = Some(Default::default());
            path
        })
    }
}

/// Stores `value` in `slot`, or returns the error for an option given twice.
fn set<T>(slot: &mut Option<T>, value: T, path: &Path, option: &str) -> Option<syn::Error> {
    if slot.is_some() {
        return Some(syn::Error::new_spanned(
            path,
            format_args!("duplicate #[remote] option `{option}`: give it once"),
        ));
    }
    *slot = Some(value);
    None
}

fn path_to_string(path: &Path) -> String {
    let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    segments.join("::")
}
