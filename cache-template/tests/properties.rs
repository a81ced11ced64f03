//! Property tests of the template parser (issue 14): it never panics, an error's range lies on
//! character boundaries inside the template, and a parsed template is its segments written back
//! (`Literal` text as is, a placeholder as `<spec>`), which parse again to the same template.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use cache_template::{Segment, Template, TemplateKind};
use proptest::prelude::*;

/// Text over the characters that matter to the parser, and a few others.
fn source() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec![
            '<', '>', ':', '.', '*', '?', '[', ']', '\\', 'a', 'b', '_', '1', ' ', 'é', 'h', 's',
        ]),
        0..16,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

/// Templates that mostly parse: literals and placeholders glued together.
fn plausible() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        prop::sample::select(vec!["prod", "cat:", ":", "-", "x.y", "*", "?"])
            .prop_map(str::to_owned),
        prop::sample::select(vec![
            "<id>", "<p.id>", "<q:hash>", "<a_b>", "<>", "<id", "<x:y>"
        ])
        .prop_map(str::to_owned),
    ];
    prop::collection::vec(piece, 0..6).prop_map(|pieces| pieces.concat())
}

fn kind() -> impl Strategy<Value = TemplateKind> {
    prop::sample::select(vec![
        TemplateKind::Key,
        TemplateKind::Tag,
        TemplateKind::Glob,
    ])
}

fn written_back(template: &Template) -> String {
    template
        .segments()
        .iter()
        .map(|s| match s {
            Segment::Literal(text) => text.clone(),
            Segment::Placeholder(p) => format!("<{}>", p.spec()),
        })
        .collect()
}

fn check(source: &str, kind: TemplateKind) -> Result<(), TestCaseError> {
    match Template::parse(source, kind) {
        Ok(template) => {
            prop_assert_eq!(template.source(), source);
            prop_assert_eq!(written_back(&template), source);
            let again = Template::parse(&written_back(&template), kind).unwrap();
            prop_assert_eq!(again, template);
        }
        Err(error) => {
            let end = error.offset + error.len;
            prop_assert!(end <= source.len(), "{error:?} beyond {source:?}");
            prop_assert!(source.is_char_boundary(error.offset) && source.is_char_boundary(end));
            prop_assert!(error.len >= 1 || source.is_empty(), "{error:?}");
            prop_assert!(!error.message.is_empty());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_text_parses_or_fails_cleanly(source in source(), kind in kind()) {
        check(&source, kind)?;
    }

    #[test]
    fn plausible_templates_round_trip(source in plausible(), kind in kind()) {
        check(&source, kind)?;
    }
}
