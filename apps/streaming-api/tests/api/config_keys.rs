//! Every key [`Settings`](streaming_api::Settings) accepts, read off its
//! `Deserialize` implementation: a deserializer that answers each request
//! for a value with a neutral one and notes the path of every leaf asked for.
//! The configuration reference and the deployment files are tested against
//! this list, so neither can name a key the service does not read, nor miss
//! one it does.

use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::Deserialize;

/// The dotted path of every leaf key of `T` (`server.port`, `storage.s3.bucket`, …), in declaration order.
///
/// # Errors
/// [`Error`] if `T`'s `Deserialize` refuses a neutral value.
pub fn keys_of<'de, T: Deserialize<'de>>() -> Result<Vec<String>, Error> {
    let mut keys = Vec::new();
    T::deserialize(Recorder { path: String::new(), keys: &mut keys })?;
    Ok(keys)
}

/// A settings type could not be walked: its `Deserialize` refused a neutral value.
#[derive(Debug)]
pub struct Error(String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: std::fmt::Display>(message: T) -> Self {
        Self(message.to_string())
    }
}

struct Recorder<'a> {
    path: String,
    keys: &'a mut Vec<String>,
}

impl Recorder<'_> {
    fn leaf(self) {
        self.keys.push(self.path);
    }
}

macro_rules! leaves {
    ($($method:ident => $visit:ident($value:expr)),* $(,)?) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            self.leaf();
            visitor.$visit($value)
        })*
    };
}

impl<'de> de::Deserializer<'de> for Recorder<'_> {
    type Error = Error;

    leaves! {
        deserialize_bool => visit_bool(false),
        deserialize_i8 => visit_i64(0),
        deserialize_i16 => visit_i64(0),
        deserialize_i32 => visit_i64(0),
        deserialize_i64 => visit_i64(0),
        deserialize_u8 => visit_u64(0),
        deserialize_u16 => visit_u64(0),
        deserialize_u32 => visit_u64(0),
        deserialize_u64 => visit_u64(0),
        deserialize_f32 => visit_f64(0.0),
        deserialize_f64 => visit_f64(0.0),
        deserialize_char => visit_char(' '),
        deserialize_str => visit_str(""),
        deserialize_string => visit_str(""),
        deserialize_identifier => visit_str(""),
        deserialize_bytes => visit_bytes(&[]),
        deserialize_byte_buf => visit_bytes(&[]),
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.leaf();
        visitor.visit_unit()
    }

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.leaf();
        visitor.visit_seq(SeqDeserializer::new(std::iter::empty::<()>()))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.leaf();
        visitor.visit_map(MapDeserializer::new(std::iter::empty::<((), ())>()))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_map(Fields { parent: self.path, fields: fields.iter(), current: None, keys: self.keys })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.leaf();
        let first = variants.first().ok_or_else(|| Error("an enum without variants".into()))?;
        visitor.visit_enum((*first).into_deserializer())
    }
}

/// A struct's fields, one after another, each with the recorder for its path.
struct Fields<'a> {
    parent: String,
    fields: std::slice::Iter<'static, &'static str>,
    current: Option<&'static str>,
    keys: &'a mut Vec<String>,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        let Some(field) = self.fields.next() else { return Ok(None) };
        self.current = Some(field);
        seed.deserialize((*field).into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let field = self.current.take().ok_or_else(|| Error("a value before its key".into()))?;
        let path = if self.parent.is_empty() { field.to_owned() } else { format!("{}.{field}", self.parent) };
        seed.deserialize(Recorder { path, keys: self.keys })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        inner: Inner,
        maybe: Option<u16>,
        list: Vec<String>,
        map: std::collections::HashMap<String, String>,
        kind: Kind,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        on: bool,
        ratio: f64,
        path: std::path::PathBuf,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        First,
    }

    #[test]
    fn every_leaf_is_listed_with_its_path() {
        assert_eq!(
            keys_of::<Outer>().unwrap(),
            ["name", "inner.on", "inner.ratio", "inner.path", "maybe", "list", "map", "kind"]
        );
    }

    #[test]
    fn the_settings_keys_are_the_documented_sections() {
        let keys = keys_of::<streaming_api::Settings>().unwrap();
        assert!(keys.contains(&"server.port".to_owned()), "{keys:?}");
        assert!(keys.contains(&"storage.s3.secret_key".to_owned()), "{keys:?}");
        assert!(keys.contains(&"kafka.upstream_topics".to_owned()), "{keys:?}");
        assert!(keys.iter().all(|k| k.contains('.')), "every key is in a section: {keys:?}");
    }
}
