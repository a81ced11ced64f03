//! The options of `#[cached]` about its loads: `none_ttl`, `lease`, `refresh_ahead`,
//! `soft_timeout_ms` and `hard_timeout_ms`, checked against each other, the policy of the
//! attribute and the function, into [`Loads`].
//!
//! Owns the rules that only these options have: timeouts need a stale window to answer with, the
//! soft timeout comes before the hard one, and the options that run the body in the background
//! (`refresh_ahead`, `soft_timeout_ms`) need a receiver that can be cloned into it. Errors are
//! spanned on the option; "needs `ttl`" is `validate.rs`'s, as for every policy option.

use proc_macro2::Span;
use syn::LitBool;

use super::{Errors, Policy};
use crate::args::{Args, Fraction, Millis, Opt, Seconds};
use crate::function::{Flavor, Function, ReceiverKind};

/// The validated load options of a `#[cached]` site with a policy.
pub(crate) struct Loads {
    /// How long a `None` result is cached (only for a return type that can be `None`).
    pub(crate) none_ttl: Option<Seconds>,
    /// `lease = false`: misses do not take the fleet lease.
    pub(crate) lease: bool,
    pub(crate) refresh_ahead: Option<Fraction>,
    pub(crate) soft_timeout: Option<Millis>,
    pub(crate) hard_timeout: Option<Millis>,
    /// The keyword of the first option that runs the body in the background (`refresh_ahead`,
    /// `soft_timeout_ms`). The site then loads through an owned loader (clones of `self` and the
    /// arguments), whose requirements are reported here.
    pub(crate) background: Option<Span>,
}

/// The load options as written.
pub(super) struct LoadArgs {
    none_ttl: Option<Opt<Seconds>>,
    lease: Option<Opt<LitBool>>,
    refresh_ahead: Option<Opt<Fraction>>,
    soft_timeout: Option<Opt<Millis>>,
    hard_timeout: Option<Opt<Millis>>,
}

impl LoadArgs {
    /// Takes the load options out of `args`.
    pub(super) fn take(args: &mut Args) -> LoadArgs {
        LoadArgs {
            none_ttl: args.none_ttl.take(),
            lease: args.lease.take(),
            refresh_ahead: args.refresh_ahead.take(),
            soft_timeout: args.soft_timeout_ms.take(),
            hard_timeout: args.hard_timeout_ms.take(),
        }
    }

    /// The options given, by keyword: each needs `ttl`.
    pub(super) fn given(&self) -> Vec<(&'static str, Span)> {
        [
            ("none_ttl", self.none_ttl.as_ref().map(|o| o.kw)),
            ("lease", self.lease.as_ref().map(|o| o.kw)),
            ("refresh_ahead", self.refresh_ahead.as_ref().map(|o| o.kw)),
            ("soft_timeout_ms", self.soft_timeout.as_ref().map(|o| o.kw)),
            ("hard_timeout_ms", self.hard_timeout.as_ref().map(|o| o.kw)),
        ]
        .into_iter()
        .filter_map(|(name, kw)| kw.map(|kw| (name, kw)))
        .collect()
    }

    /// `none_ttl` on a function that never returns `None`.
    pub(super) fn check_none_ttl(&self, func: &Function, errors: &mut Errors) {
        if let Some(none_ttl) = &self.none_ttl
            && !func.output.shape.has_option()
        {
            errors.push(syn::Error::new(
                none_ttl.kw,
                format!(
                    "`none_ttl` sets how long a `None` result is cached, but `{}` never returns `None` \
                     (its return type is not `Option<T>` nor `Result<Option<T>, E>`)",
                    func.sig().ident
                ),
            ));
        }
    }

    /// The load options of a site whose attribute has the policy `policy`.
    pub(super) fn validate(self, policy: &Policy, func: &Function, errors: &mut Errors) -> Loads {
        self.check_timeouts(policy, errors);
        let background = [
            self.refresh_ahead.as_ref().map(|o| (o.kw, "refresh_ahead")),
            self.soft_timeout
                .as_ref()
                .map(|o| (o.kw, "soft_timeout_ms")),
        ]
        .into_iter()
        .flatten()
        .next();
        if let Some((kw, name)) = background {
            check_background(kw, name, func, errors);
        }
        Loads {
            none_ttl: self.none_ttl.map(|o| o.value),
            lease: self.lease.is_none_or(|o| o.value.value),
            refresh_ahead: self.refresh_ahead.map(|o| o.value),
            soft_timeout: self.soft_timeout.map(|o| o.value),
            hard_timeout: self.hard_timeout.map(|o| o.value),
            background: background.map(|(kw, _)| kw),
        }
    }

    /// Timeouts are positive, the soft one shorter than the hard one, and both need a stale value
    /// to answer with.
    fn check_timeouts(&self, policy: &Policy, errors: &mut Errors) {
        let timeouts = [
            ("soft_timeout_ms", &self.soft_timeout),
            ("hard_timeout_ms", &self.hard_timeout),
        ];
        for (name, opt) in timeouts {
            let Some(opt) = opt else { continue };
            if opt.value.0.literal() == Some(0) {
                errors.push(syn::Error::new(
                    opt.value.0.span(),
                    format!("`{name} = 0` would give up on every load at once; remove it instead"),
                ));
            }
            if policy.stale.is_none() {
                errors.push(syn::Error::new(
                    opt.kw,
                    format!(
                        "`{name}` answers a slow load with the stale value, but this policy keeps \
                         none: add a fail-safe window, e.g. `stale = 300`"
                    ),
                ));
            }
        }
        if let (Some(soft), Some(hard)) = (&self.soft_timeout, &self.hard_timeout)
            && let (Some(s), Some(h)) = (soft.value.0.literal(), hard.value.0.literal())
            && s >= h
        {
            errors.push(syn::Error::new(
                soft.value.0.span(),
                format!(
                    "`soft_timeout_ms = {s}` is not shorter than `hard_timeout_ms = {h}`: the load \
                     would be abandoned before the stale value is served while it goes on"
                ),
            ));
        }
    }
}

/// An option that runs the body in the background needs to clone `self` and the arguments into
/// it: a shared receiver (or none), no `&mut` argument, and a body that is the function's own
/// (not one `#[async_trait]` rewrote).
fn check_background(kw: Span, name: &str, func: &Function, errors: &mut Errors) {
    if let Some(receiver) = func.receiver
        && receiver.kind != ReceiverKind::Shared
    {
        let taken = match receiver.kind {
            ReceiverKind::Mut => "`&mut self`: its changes to the clone would be lost",
            _ => "`self` by value",
        };
        errors.push(syn::Error::new(
            kw,
            format!(
                "`{name}` runs the body in the background on a clone of `self`, which needs `&self`; \
                 `{}` takes {taken}",
                func.sig().ident
            ),
        ));
    }
    for input in &func.sig().inputs {
        if let syn::FnArg::Typed(arg) = input
            && let syn::Type::Reference(r) = &*arg.ty
            && r.mutability.is_some()
        {
            errors.push(syn::Error::new(
                kw,
                format!(
                    "`{name}` runs the body in the background on a copy of each argument, so it \
                     cannot take `&mut` arguments, as `{}` does",
                    func.sig().ident
                ),
            ));
            break;
        }
    }
    if matches!(func.flavor, Flavor::AsyncTrait) {
        errors.push(syn::Error::new(
            kw,
            format!(
                "`{name}` runs the body in the background, which a method rewritten by \
                 `#[async_trait]` cannot: use a native `async fn` in the trait"
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::args::MacroKind;

    /// The errors `#[cached(<args>)]` on `<item>` expands to.
    fn errors(args: &str, item: &str) -> String {
        let args = args.parse().expect("args");
        let item = item.parse().expect("item");
        crate::expand_attribute(MacroKind::Cached, args, item).to_string()
    }

    #[test]
    fn background_loads_need_a_shared_receiver_and_owned_arguments() {
        let refresh = r#"key = "p:<id>", ttl = 60, refresh_ahead = 0.8"#;
        let e = errors(refresh, "async fn f(&mut self, id: u64) -> u64 { id }");
        assert!(
            e.contains("takes `&mut self`: its changes to the clone would be lost"),
            "{e}"
        );
        let e = errors(refresh, "async fn f(self, id: u64) -> u64 { id }");
        assert!(e.contains("takes `self` by value"), "{e}");
        let e = errors(
            refresh,
            "async fn f(&self, id: u64, out: &mut Vec<u8>) -> u64 { id }",
        );
        assert!(
            e.contains("cannot take `&mut` arguments, as `f` does"),
            "{e}"
        );
        let soft = r#"key = "p:<id>", ttl = 60, stale = 60, soft_timeout_ms = 50"#;
        let async_trait = "fn f<'life0, 'async_trait>(&'life0 self, id: u64) -> \
            ::core::pin::Pin<Box<dyn ::core::future::Future<Output = u64> + Send + 'async_trait>> \
            where Self: 'async_trait { Box::pin(async move { let __self = self; id }) }";
        let e = errors(soft, async_trait);
        assert!(e.contains("`soft_timeout_ms` runs the body in the background, which a method rewritten by `#[async_trait]` cannot"), "{e}");
        // A hard timeout alone drops the borrowing load: none of this applies.
        let hard = r#"key = "p:<id>", ttl = 60, stale = 60, hard_timeout_ms = 50"#;
        let e = errors(hard, "async fn f(&mut self, id: u64) -> u64 { id }");
        assert!(!e.contains("compile_error"), "{e}");
    }

    #[test]
    fn timeouts_are_positive() {
        let e = errors(
            r#"key = "p:<id>", ttl = 60, stale = 60, soft_timeout_ms = 0"#,
            "async fn f(&self, id: u64) -> u64 { id }",
        );
        assert!(
            e.contains("`soft_timeout_ms = 0` would give up on every load at once"),
            "{e}"
        );
    }
}
