//! "Did you mean ..?": which known name a misspelt one most likely meant, for the messages of
//! `args.rs` (option keywords) and `validate.rs` (placeholder names). Knows nothing of options or
//! functions; it only compares spellings.

/// `true` when `a` looks like a misspelling of `b` (a small edit distance).
pub(crate) fn is_similar(a: &str, b: &str) -> bool {
    if a == b || a.is_empty() {
        return false;
    }
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            let next = (row[j + 1] + 1).min(row[j] + 1).min(prev + cost);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()] <= (b.len().max(a.len()) / 3).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similar_names() {
        assert!(is_similar("idd", "id"));
        assert!(is_similar("tll", "ttl"));
        assert!(is_similar("categroy_id", "category_id"));
        assert!(!is_similar("query", "id"));
        assert!(!is_similar("id", "id"));
    }
}
