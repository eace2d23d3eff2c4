//! A small JSON writer for `--json` output (the command takes no serde dependency).

use std::fmt::Write;

/// A JSON value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// Integers are written exactly (a u64 cursor must not pass through an f64).
    UInt(u64),
    Float(f64),
    Str(String),
    Array(Vec<Value>),
    /// Keys in the order given.
    Object(Vec<(&'static str, Value)>),
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}
impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value::UInt(v)
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Value {
        Value::UInt(v.into())
    }
}
impl From<usize> for Value {
    fn from(v: usize) -> Value {
        Value::UInt(v as u64)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Str(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Str(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}
impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(v: Vec<T>) -> Value {
        Value::Array(v.into_iter().map(Into::into).collect())
    }
}

impl Value {
    /// The value as indented JSON text, with a final newline.
    pub fn pretty(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, 0);
        out.push('\n');
        out
    }

    fn write(&self, out: &mut String, indent: usize) {
        let pad = |out: &mut String, n: usize| out.extend(std::iter::repeat(' ').take(n));
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::UInt(n) => {
                let _ = write!(out, "{n}");
            }
            // JSON has no NaN or infinity.
            Value::Float(f) if !f.is_finite() => out.push_str("null"),
            Value::Float(f) => {
                let _ = write!(out, "{f}");
            }
            Value::Str(s) => write_string(out, s),
            Value::Array(items) if items.is_empty() => out.push_str("[]"),
            Value::Array(items) => {
                out.push_str("[\n");
                for (i, item) in items.iter().enumerate() {
                    pad(out, indent + 2);
                    item.write(out, indent + 2);
                    out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
                }
                pad(out, indent);
                out.push(']');
            }
            Value::Object(fields) if fields.is_empty() => out.push_str("{}"),
            Value::Object(fields) => {
                out.push_str("{\n");
                for (i, (key, value)) in fields.iter().enumerate() {
                    pad(out, indent + 2);
                    write_string(out, key);
                    out.push_str(": ");
                    value.write(out, indent + 2);
                    out.push_str(if i + 1 < fields.len() { ",\n" } else { "\n" });
                }
                pad(out, indent);
                out.push('}');
            }
        }
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Every control character, not only those JSON requires (below 0x20):
            // DEL and the C1 controls (U+009B is a CSI) would reach a terminal raw.
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_json() {
        let v = Value::Object(vec![
            ("name", "/a \"b\"\n".into()),
            ("n", u64::MAX.into()),
            ("f", 0.5.into()),
            ("nan", f64::NAN.into()),
            ("none", Value::from(None::<u64>)),
            ("list", vec![1u64, 2].into()),
            ("empty", Value::Array(vec![])),
            ("t", true.into()),
        ]);
        assert_eq!(
            v.pretty(),
            "{\n  \"name\": \"/a \\\"b\\\"\\n\",\n  \"n\": 18446744073709551615,\n  \
             \"f\": 0.5,\n  \"nan\": null,\n  \"none\": null,\n  \"list\": [\n    1,\n    2\n  ],\n  \
             \"empty\": [],\n  \"t\": true\n}\n"
        );
        let mut s = String::new();
        write_string(&mut s, "\u{1}");
        assert_eq!(s, "\"\\u0001\"");
    }
}
