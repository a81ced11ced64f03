//! Parsing of the annotated function: its parameters, its body and the type its future yields.
//!
//! Two forms are accepted:
//! - an `async fn` (inherent method, trait method with a native `async fn`, free function);
//! - a method that `#[async_trait]` has already rewritten, which is what an attribute inside an
//!   `#[async_trait] impl` block sees: `fn f<'life0, 'async_trait>(&'life0 self, ..) ->
//!   Pin<Box<dyn Future<Output = R> + Send + 'async_trait>>` whose body is
//!   `Box::pin(async move { .. })`. The attribute then works inside that `async move` block.
//!
//! Owns what the macros know of the function: its flavor, receiver, parameter names, the shape of
//! its return type, its body, and how to put a new body back ([`Function::with_body`]). It rejects
//! only what is no function the attributes can wrap; it never looks at the attribute's options.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{
    AngleBracketedGenericArguments, Attribute, Block, Expr, ExprAsync, ExprCall, FnArg,
    GenericArgument, Ident, ItemFn, Pat, PathArguments, ReturnType, Signature, Stmt, Token, Type,
    TypeParamBound, Visibility,
};

use crate::args::MacroKind;

/// The annotated function.
pub(crate) struct Function {
    pub(crate) item: ItemFn,
    pub(crate) flavor: Flavor,
    /// The type the function's future yields (`R` in `async fn f() -> R`).
    pub(crate) output: Output,
    pub(crate) receiver: Option<Receiver>,
    /// Every name bound by the parameters (other than `self`), in order.
    pub(crate) params: Vec<Ident>,
}

/// How the body is reached.
pub(crate) enum Flavor {
    /// `async fn`: the body is the function's block.
    Async,
    /// Rewritten by `#[async_trait]`: the body is the block of the `async move` passed to
    /// `Box::pin` (the last statement of the function's block).
    AsyncTrait,
}

/// How `self` is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReceiverKind {
    /// `&self`
    Shared,
    /// `&mut self`
    Mut,
    /// `self`, `mut self`, `self: Box<Self>`, ..
    Owned,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Receiver {
    pub(crate) kind: ReceiverKind,
    pub(crate) span: Span,
}

/// The type the function's future yields, split by shape.
pub(crate) struct Output {
    /// The whole type, as written.
    pub(crate) ty: Type,
    pub(crate) shape: Shape,
}

/// The return-type shapes the macros understand, by the last path segment (`Option`, `Result`).
/// A type alias of `Option`/`Result` is a plain [`Shape::Value`].
pub(crate) enum Shape {
    /// `()`, or no return type.
    Unit,
    /// `T`: every value is a success.
    Value(Type),
    /// `Option<T>`: `None` is a success too (cached only with `none_ttl`).
    Option(Type),
    /// `Result<T, E>`: `Err` is never cached.
    Result(Type, Type),
    /// `Result<Option<T>, E>`.
    ResultOption(Type, Type),
}

impl Shape {
    /// `T`: the type of the value that is cached or written.
    pub(crate) fn value(&self) -> Option<&Type> {
        match self {
            Shape::Unit => None,
            Shape::Value(t)
            | Shape::Option(t)
            | Shape::Result(t, _)
            | Shape::ResultOption(t, _) => Some(t),
        }
    }

    /// `E`
    pub(crate) fn error(&self) -> Option<&Type> {
        match self {
            Shape::Result(_, e) | Shape::ResultOption(_, e) => Some(e),
            _ => None,
        }
    }

    /// `true` when `None` is one of the successful values.
    pub(crate) fn has_option(&self) -> bool {
        matches!(self, Shape::Option(_) | Shape::ResultOption(..))
    }
}

impl Function {
    /// Parses the item an attribute was put on.
    pub(crate) fn parse(tokens: TokenStream, kind: MacroKind) -> syn::Result<Function> {
        let item: ItemFn = match syn::parse2(tokens.clone()) {
            Ok(item) => item,
            Err(error) => {
                // A declaration without a body (in a trait) is the one common mistake worth naming.
                if let Ok(decl) = syn::parse2::<FnDecl>(tokens) {
                    return Err(syn::Error::new(
                        decl.semi.span,
                        format!(
                            "{} needs a function body: put it on the implementation of `{}`",
                            kind.attr(),
                            decl.sig.ident
                        ),
                    ));
                }
                return Err(error);
            }
        };
        let (flavor, output) = if item.sig.asyncness.is_some() {
            let ty = match &item.sig.output {
                ReturnType::Default => syn::parse_quote_spanned!(item.sig.ident.span()=> ()),
                ReturnType::Type(_, ty) => (**ty).clone(),
            };
            (Flavor::Async, ty)
        } else if let Some(ty) = async_trait_output(&item) {
            (Flavor::AsyncTrait, ty)
        } else {
            return Err(syn::Error::new(
                item.sig.fn_token.span,
                format!(
                    "{} needs an `async fn`: `{}` is not async (nor a method rewritten by `#[async_trait]`)",
                    kind.attr(),
                    item.sig.ident
                ),
            ));
        };
        let shape = Shape::of(&output)?;
        let receiver = item.sig.receiver().map(|r| Receiver {
            kind: match (&r.reference, &r.colon_token) {
                (Some(_), _) if r.mutability.is_some() => ReceiverKind::Mut,
                (Some(_), _) => ReceiverKind::Shared,
                (None, _) => ReceiverKind::Owned,
            },
            span: r.self_token.span,
        });
        let mut params = Vec::new();
        for input in &item.sig.inputs {
            if let FnArg::Typed(arg) = input {
                bindings(&arg.pat, &mut params);
            }
        }
        Ok(Function {
            item,
            flavor,
            output: Output { ty: output, shape },
            receiver,
            params,
        })
    }

    /// For a parameter `name: T` where `T` is a primitive integer type behind zero or more
    /// references (`u64`, `&i32`), the number of references; `None` for any other parameter
    /// (and for `ref name: T`, whose binding is a reference the type does not show).
    pub(crate) fn integer_param(&self, name: &syn::Ident) -> Option<usize> {
        const INTEGERS: &[&str] = &[
            "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize",
        ];
        let ty = self.item.sig.inputs.iter().find_map(|input| match input {
            FnArg::Typed(arg) => match &*arg.pat {
                syn::Pat::Ident(p)
                    if p.ident == *name && p.by_ref.is_none() && p.subpat.is_none() =>
                {
                    Some(&*arg.ty)
                }
                _ => None,
            },
            FnArg::Receiver(_) => None,
        })?;
        let mut ty = ty;
        let mut refs = 0;
        loop {
            match ty {
                syn::Type::Reference(r) => {
                    refs += 1;
                    ty = &r.elem;
                }
                syn::Type::Paren(p) => ty = &p.elem,
                syn::Type::Path(p) if p.qself.is_none() => {
                    let ident = p.path.get_ident()?;
                    return INTEGERS.iter().any(|i| ident == i).then_some(refs);
                }
                _ => return None,
            }
        }
    }

    pub(crate) fn sig(&self) -> &Signature {
        &self.item.sig
    }

    /// The block that becomes the body of the generated `async` block.
    pub(crate) fn body(&self) -> &Block {
        match self.flavor {
            Flavor::Async => &self.item.block,
            Flavor::AsyncTrait => match box_pin_async(&self.item.block) {
                Some((_, inner)) => &inner.block,
                // `async_trait_output` checked the shape when the flavor was chosen.
                None => &self.item.block,
            },
        }
    }

    /// The function with its body replaced by `new_body` (statements of an async context):
    /// `async fn f(..) -> R { new_body }`, or for the `#[async_trait]` form
    /// `fn f(..) -> Pin<Box<..>> { Box::pin(async move { new_body }) }`.
    pub(crate) fn with_body(&self, new_body: TokenStream) -> TokenStream {
        let ItemFn {
            attrs,
            vis,
            sig,
            block,
        } = &self.item;
        let outer = attrs
            .iter()
            .filter(|a| matches!(a.style, syn::AttrStyle::Outer));
        let inner = attrs
            .iter()
            .filter(|a| matches!(a.style, syn::AttrStyle::Inner(_)));
        let body = match self.flavor {
            Flavor::Async => new_body,
            Flavor::AsyncTrait => match box_pin_async(block) {
                Some((call, inner)) => {
                    let stmts = &block.stmts[..block.stmts.len() - 1];
                    let func = &call.func;
                    let ExprAsync {
                        attrs,
                        async_token,
                        capture,
                        ..
                    } = inner;
                    quote! {
                        #(#stmts)*
                        #func(#(#attrs)* #async_token #capture { #new_body })
                    }
                }
                None => new_body,
            },
        };
        quote! {
            #(#outer)*
            #vis #sig {
                #(#inner)*
                #body
            }
        }
    }
}

impl Shape {
    fn of(ty: &Type) -> syn::Result<Shape> {
        match ty {
            Type::Paren(p) => Shape::of(&p.elem),
            Type::Group(g) => Shape::of(&g.elem),
            Type::Tuple(t) if t.elems.is_empty() => Ok(Shape::Unit),
            Type::Path(p) if p.qself.is_none() => {
                let Some(last) = p.path.segments.last() else {
                    return Ok(Shape::Value(ty.clone()));
                };
                let types = type_args(&last.arguments);
                match (last.ident.to_string().as_str(), types.as_slice()) {
                    ("Option", [t]) => Ok(Shape::Option((*t).clone())),
                    ("Result", [t, e]) => Ok(match option_arg(t) {
                        Some(inner) => Shape::ResultOption(inner.clone(), (*e).clone()),
                        None => Shape::Result((*t).clone(), (*e).clone()),
                    }),
                    ("Result", [_]) => Err(syn::Error::new_spanned(
                        ty,
                        "spell out the error type: `Result<T, E>`; a one-parameter `Result` alias hides \
                         the error type, and errors are never cached",
                    )),
                    _ => Ok(Shape::Value(ty.clone())),
                }
            }
            _ => Ok(Shape::Value(ty.clone())),
        }
    }
}

/// `T` when `ty` is `Option<T>`.
fn option_arg(ty: &Type) -> Option<&Type> {
    match ty {
        Type::Paren(p) => option_arg(&p.elem),
        Type::Group(g) => option_arg(&g.elem),
        Type::Path(p) if p.qself.is_none() => {
            let last = p.path.segments.last()?;
            match type_args(&last.arguments).as_slice() {
                [t] if last.ident == "Option" => Some(t),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The type arguments of `Name<A, B>`, ignoring lifetimes and constants.
fn type_args(args: &PathArguments) -> Vec<&Type> {
    match args {
        PathArguments::AngleBracketed(AngleBracketedGenericArguments { args, .. }) => args
            .iter()
            .filter_map(|a| match a {
                GenericArgument::Type(t) => Some(t),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The names a parameter pattern binds: `id` in `id: u64`, `a` and `b` in `(a, b): (u8, u8)`.
pub(crate) fn bindings(pat: &Pat, out: &mut Vec<Ident>) {
    match pat {
        Pat::Ident(p) => {
            out.push(p.ident.clone());
            if let Some((_, sub)) = &p.subpat {
                bindings(sub, out);
            }
        }
        Pat::Reference(p) => bindings(&p.pat, out),
        Pat::Paren(p) => bindings(&p.pat, out),
        Pat::Type(p) => bindings(&p.pat, out),
        Pat::Tuple(p) => p.elems.iter().for_each(|p| bindings(p, out)),
        Pat::TupleStruct(p) => p.elems.iter().for_each(|p| bindings(p, out)),
        Pat::Slice(p) => p.elems.iter().for_each(|p| bindings(p, out)),
        Pat::Struct(p) => p.fields.iter().for_each(|f| bindings(&f.pat, out)),
        _ => {}
    }
}

/// The future's output type of a function rewritten by `#[async_trait]`, if it is one.
fn async_trait_output(item: &ItemFn) -> Option<Type> {
    box_pin_async(&item.block)?;
    let ReturnType::Type(_, ty) = &item.sig.output else {
        return None;
    };
    // Pin<Box<dyn Future<Output = R> + ..>>
    let boxed = single_arg(ty, "Pin")?;
    let Type::TraitObject(object) = single_arg(boxed, "Box")? else {
        return None;
    };
    object.bounds.iter().find_map(|bound| {
        let TypeParamBound::Trait(bound) = bound else {
            return None;
        };
        let last = bound.path.segments.last()?;
        if last.ident != "Future" {
            return None;
        }
        let PathArguments::AngleBracketed(args) = &last.arguments else {
            return None;
        };
        args.args.iter().find_map(|a| match a {
            GenericArgument::AssocType(assoc) if assoc.ident == "Output" => Some(assoc.ty.clone()),
            _ => None,
        })
    })
}

/// `T` when `ty` is `name<T>` (by last path segment).
fn single_arg<'a>(ty: &'a Type, name: &str) -> Option<&'a Type> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    match type_args(&last.arguments).as_slice() {
        [t] if last.ident == name => Some(t),
        _ => None,
    }
}

/// The `Box::pin(async move { .. })` that ends a block rewritten by `#[async_trait]`.
fn box_pin_async(block: &Block) -> Option<(&ExprCall, &ExprAsync)> {
    let Some(Stmt::Expr(Expr::Call(call), None)) = block.stmts.last() else {
        return None;
    };
    let Expr::Path(func) = &*call.func else {
        return None;
    };
    let segments: Vec<String> = func
        .path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect();
    if !segments.ends_with(&["Box".to_owned(), "pin".to_owned()]) || call.args.len() != 1 {
        return None;
    }
    match call.args.first() {
        Some(Expr::Async(inner)) if inner.capture.is_some() => Some((call, inner)),
        _ => None,
    }
}

/// A function declaration without a body: `async fn f(&self) -> T;`.
struct FnDecl {
    sig: Signature,
    semi: Token![;],
}

impl Parse for FnDecl {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        input.call(Attribute::parse_outer)?;
        input.parse::<Visibility>()?;
        Ok(FnDecl {
            sig: input.parse()?,
            semi: input.parse()?,
        })
    }
}

impl Output {
    pub(crate) fn span(&self) -> Span {
        self.ty.span()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::ToTokens;

    fn parse(src: &str) -> syn::Result<Function> {
        Function::parse(src.parse().expect("tokens"), MacroKind::Cached)
    }

    fn shape(ret: &str) -> String {
        let func = parse(&format!("async fn f(&self) -> {ret} {{ todo!() }}")).expect("parses");
        let s = &func.output.shape;
        let name = match s {
            Shape::Unit => "unit",
            Shape::Value(_) => "value",
            Shape::Option(_) => "option",
            Shape::Result(..) => "result",
            Shape::ResultOption(..) => "result-option",
        };
        let parts: Vec<String> = [s.value(), s.error()]
            .into_iter()
            .flatten()
            .map(|t| t.to_token_stream().to_string())
            .collect();
        format!("{name} {}", parts.join(" / "))
    }

    #[test]
    fn detects_return_shapes_by_last_segment() {
        assert_eq!(shape("Product"), "value Product");
        assert_eq!(shape("Option<Product>"), "option Product");
        assert_eq!(shape("std::option::Option<Vec<u8>>"), "option Vec < u8 >");
        assert_eq!(
            shape("Result<Product, DbError>"),
            "result Product / DbError"
        );
        assert_eq!(
            shape("Result<Option<Product>, DbError>"),
            "result-option Product / DbError"
        );
        assert_eq!(
            shape("core::result::Result<(Option<u8>), E>"),
            "result-option u8 / E"
        );
        assert_eq!(
            shape("DbResult<Product>"),
            "value DbResult < Product >",
            "aliases are plain values"
        );
        assert_eq!(shape("()"), "unit ");
        let err = parse("async fn f(&self) -> io::Result<u8> { todo!() }")
            .err()
            .expect("rejected");
        assert!(
            err.to_string().starts_with("spell out the error type"),
            "{err}"
        );
    }

    #[test]
    fn collects_receiver_and_parameter_names() {
        let func = parse("async fn f(&mut self, id: u64, (a, b): (u8, u8), Point { x, .. }: Point, _: u8) -> u8 { 0 }")
            .expect("parses");
        assert_eq!(func.receiver.map(|r| r.kind), Some(ReceiverKind::Mut));
        let names: Vec<String> = func.params.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["id", "a", "b", "x"]);
        let func = parse("async fn f(self: Box<Self>) -> u8 { 0 }").expect("parses");
        assert_eq!(func.receiver.map(|r| r.kind), Some(ReceiverKind::Owned));
        assert!(
            parse("async fn f() -> u8 { 0 }")
                .expect("parses")
                .receiver
                .is_none()
        );
    }

    #[test]
    fn recognises_async_trait_methods() {
        let func = parse(
            "fn get<'life0, 'async_trait>(&'life0 self, id: u64)
                -> ::core::pin::Pin<Box<dyn ::core::future::Future<Output = Option<u8>> + ::core::marker::Send + 'async_trait>>
                where 'life0: 'async_trait, Self: 'async_trait
            { Box::pin(async move { let __self = self; let __ret: Option<u8> = { None }; __ret }) }",
        )
        .expect("parses");
        assert!(matches!(func.flavor, Flavor::AsyncTrait));
        assert_eq!(
            func.output.ty.to_token_stream().to_string(),
            "Option < u8 >"
        );
        assert_eq!(
            func.body().stmts.len(),
            3,
            "the body is the `async move` block's"
        );
        let wrapped = func.with_body(quote!(BODY)).to_string();
        assert!(
            wrapped.contains("Box :: pin (async move { BODY })"),
            "{wrapped}"
        );
    }

    #[test]
    fn rejects_what_is_not_an_async_fn() {
        let err = parse("fn f(&self) -> u8 { 0 }").err().expect("rejected");
        assert!(
            err.to_string().starts_with("#[cached] needs an `async fn`"),
            "{err}"
        );
        let err = parse("async fn f(&self) -> u8;").err().expect("rejected");
        assert!(
            err.to_string()
                .starts_with("#[cached] needs a function body"),
            "{err}"
        );
        assert!(parse("struct S;").is_err());
    }
}
