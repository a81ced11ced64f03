//! The template parser on arbitrary text: never panics; an error's range lies on character
//! boundaries inside the template; a template that parses writes back to its source.
#![no_main]

use cache_template::{Segment, Template, TemplateKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u8, &str)| {
    let (kind, source) = input;
    let kind = [TemplateKind::Key, TemplateKind::Tag, TemplateKind::Glob][usize::from(kind % 3)];
    match Template::parse(source, kind) {
        Ok(template) => {
            let written: String = template
                .segments()
                .iter()
                .map(|s| match s {
                    Segment::Literal(text) => text.clone(),
                    Segment::Placeholder(p) => format!("<{}>", p.spec()),
                })
                .collect();
            assert_eq!(written, source);
        }
        Err(error) => {
            let end = error.offset + error.len;
            assert!(end <= source.len(), "{error:?} beyond {source:?}");
            assert!(source.is_char_boundary(error.offset) && source.is_char_boundary(end));
        }
    }
});
