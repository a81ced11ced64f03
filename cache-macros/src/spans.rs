//! Where the generated code reports type errors. Generated tokens carry the span of the user code
//! they stand for, so that rustc blames that code: [`TypeSpan`] puts every use of the cached types
//! on the first token of the declared return type, and [`respan`] moves a whole expression onto one
//! span. This file only relocates tokens; it never decides what code is generated (`expand/`).

use proc_macro2::{Delimiter, Group, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};

/// Where errors about the cached types are reported: the first token of the return type. Every
/// generated use of `T` and `E` whose bounds can fail (the `cached`/`put` call, its `.await`, the
/// copies the loader keeps) is spanned on exactly this token, so that rustc reports each
/// unsatisfied bound once (it drops a repeated predicate at the same span), at the return type,
/// naming the offending type: "the trait bound `Product: Serialize` is not satisfied".
///
/// (One token, not the whole type: `.await` reports the bounds of the awaited future at the span of
/// its `await` keyword, a single token, and the spans must be equal.)
#[derive(Clone, Copy)]
pub(crate) struct TypeSpan(Span);

impl TypeSpan {
    pub(crate) fn of(ty: &impl ToTokens) -> TypeSpan {
        TypeSpan(
            ty.to_token_stream()
                .into_iter()
                .next()
                .map_or_else(Span::call_site, |tt| tt.span()),
        )
    }

    /// `::cache_core::__private::<function>(<args>).await`, spanned here. No turbofish: the types
    /// are inferred, and every bound is checked at the path, the call or the `.await`.
    pub(crate) fn call_await(self, function: &str, args: TokenStream) -> TokenStream {
        let path = self.path(quote!(::cache_core::__private), function);
        let mut args = Group::new(Delimiter::Parenthesis, args);
        args.set_span(self.0);
        let await_ = quote_spanned!(self.0=> .await);
        quote!(#path #args #await_)
    }

    /// `<prefix>::<function>`, spanned here.
    fn path(self, prefix: TokenStream, function: &str) -> TokenStream {
        let prefix = respan(prefix, self.0);
        let function = syn::Ident::new(function, self.0);
        quote!(#prefix::#function)
    }

    /// The generated local `ident`, spanned here. This gives up hygiene, so it is only for
    /// bindings in scopes that contain no user code (the loader that `cached` polls).
    pub(crate) fn locate(self, ident: &syn::Ident) -> syn::Ident {
        syn::Ident::new(&ident.to_string(), self.0)
    }

    /// `Clone::clone(&<value>)`, spanned here: a copy of what the loader returns.
    pub(crate) fn keep(self, value: &syn::Ident) -> TokenStream {
        let clone = self.path(quote!(::core::clone::Clone), "clone");
        quote_spanned!(self.0=> #clone(&#value))
    }
}

/// `tokens` with every token spanned at `span`.
pub(crate) fn respan(tokens: impl ToTokens, span: Span) -> TokenStream {
    tokens
        .into_token_stream()
        .into_iter()
        .map(|mut tt| {
            respan_tree(&mut tt, span);
            tt
        })
        .collect()
}

/// Every token of `tt` (recursively) spanned at `span`.
fn respan_tree(tt: &mut TokenTree, span: Span) {
    if let TokenTree::Group(g) = tt {
        let stream = g
            .stream()
            .into_iter()
            .map(|mut t| {
                respan_tree(&mut t, span);
                t
            })
            .collect();
        let mut group = Group::new(g.delimiter(), stream);
        group.set_span(span);
        *tt = TokenTree::Group(group);
    } else {
        tt.set_span(span);
    }
}
