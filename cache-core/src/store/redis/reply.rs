//! The reply of a read's `MGET` (entries, then the clear mark, then tag marks), checked and split
//! without copying: the entries stay the reply's own values until the engine takes each one's
//! bytes, and the marks are parsed in place.
//!
//! Owns the reply's shape only; what the marks mean is the engine's.

use crate::clock::Timestamp;

/// Marks read with entries: the namespace clear time and each requested tag's time
/// ([`Timestamp::EPOCH`]: never).
#[derive(Debug, Default, Clone)]
pub(crate) struct Marks {
    pub(crate) clear: Timestamp,
    pub(crate) tags: Vec<Timestamp>,
}

/// The entries of a read, in key order: each one's bytes, or `None` where the key is missing.
pub(crate) struct Entries(std::vec::IntoIter<redis::Value>);

impl Iterator for Entries {
    type Item = Option<Vec<u8>>;

    fn next(&mut self) -> Option<Option<Vec<u8>>> {
        self.0.next().map(|value| match value {
            redis::Value::BulkString(bytes) => Some(bytes),
            _ => None,
        })
    }
}

impl Entries {
    pub(super) fn new(values: Vec<redis::Value>) -> Entries {
        Entries(values.into_iter())
    }
}

/// One value of an `MGET` reply.
pub(super) trait MgetValue {
    /// The mark it holds, in µs since the epoch (`None`: no mark, or not a number).
    fn mark(&self) -> Option<u64>;
}

impl MgetValue for redis::Value {
    fn mark(&self) -> Option<u64> {
        match self {
            redis::Value::BulkString(bytes) => std::str::from_utf8(bytes).ok()?.parse().ok(),
            _ => None,
        }
    }
}

impl MgetValue for Option<Vec<u8>> {
    fn mark(&self) -> Option<u64> {
        std::str::from_utf8(self.as_deref()?).ok()?.parse().ok()
    }
}

/// The values of an `MGET` reply: an array of bulk strings and nils (for missing keys). Anything
/// else (a server error, another shape from a proxy or a broken server) is an error.
pub(super) fn mget_values(reply: redis::Value) -> redis::RedisResult<Vec<redis::Value>> {
    let unexpected = || {
        redis::RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "MGET reply is not an array of strings",
        ))
    };
    let mut items = match reply {
        redis::Value::Array(items) => items,
        redis::Value::ServerError(e) => return Err(e.into()),
        _ => return Err(unexpected()),
    };
    let odd = items
        .iter()
        .position(|v| !matches!(v, redis::Value::BulkString(_) | redis::Value::Nil));
    match odd.map(|i| items.swap_remove(i)) {
        None => Ok(items),
        Some(redis::Value::ServerError(e)) => Err(e.into()),
        Some(_) => Err(unexpected()),
    }
}

/// Splits the reply of the combined MGET into the entries and the marks. A reply of another
/// length than asked for (a proxy or a broken server) is an L2 error, never a panic.
pub(super) fn split_read<T: MgetValue>(
    mut all: Vec<T>,
    entries: usize,
    marks: usize,
) -> redis::RedisResult<(Vec<T>, Marks)> {
    if all.len() != entries + marks {
        return Err(redis::RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "MGET reply has another number of values than keys asked for",
            format!("{} values for {} keys", all.len(), entries + marks),
        )));
    }
    let mut read = all[entries..]
        .iter()
        .map(|m| m.mark().map_or(Timestamp::EPOCH, Timestamp::from_micros));
    let clear = read.next().unwrap_or(Timestamp::EPOCH);
    let marks = Marks {
        clear,
        tags: read.collect(),
    };
    all.truncate(entries);
    Ok((all, marks))
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::Value;

    #[test]
    fn an_mget_reply_of_another_shape_is_an_error_and_entries_hand_out_bytes() {
        let ok = mget_values(Value::Array(vec![
            Value::BulkString(b"v".to_vec()),
            Value::Nil,
            Value::BulkString(b"12".to_vec()),
        ]))
        .unwrap();
        let (entries, marks) = split_read(ok, 2, 1).unwrap();
        let entries: Vec<_> = Entries::new(entries).collect();
        assert_eq!(entries, vec![Some(b"v".to_vec()), None]);
        assert_eq!(marks.clear, Timestamp::from_micros(12));
        assert!(mget_values(Value::Int(1)).is_err(), "not an array");
        assert!(
            mget_values(Value::Array(vec![Value::Nil, Value::Int(3)])).is_err(),
            "an item of another type"
        );
        assert!(mget_values(Value::Array(vec![Value::Nil, Value::Okay])).is_err());
    }
}
