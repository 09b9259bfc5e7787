//! A serialised struct kept as its list of fields: the form in which the live updates hold each
//! plugin's entries (its `/api/metrics` entry and its card). A list of `(key, value)` costs a
//! fraction of a `serde_json::Value` object to build, compare and drop (the keys are the
//! struct's own `&'static str`s, and there is no tree of map nodes), and is written out as
//! serde_json writes the struct itself.

use serde::ser::{Impossible, Serialize, SerializeMap, SerializeStruct, Serializer};
use serde_json::{Error, Value};

/// A struct's fields, in the struct's order.
#[derive(Debug, Default)]
pub struct Fields(Vec<(&'static str, Value)>);

impl Fields {
    /// The fields of a plain struct: one with no `#[serde(flatten)]` field, which serde would
    /// write as a map with keys of no fixed lifetime.
    pub fn of(value: &impl Serialize) -> Fields {
        value.serialize(FieldCollector).expect("live entries are plain structs, whose fields always serialise")
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Value)> {
        self.0.iter().map(|(k, v)| (*k, v))
    }
}

impl Serialize for Fields {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl SerializeStruct for Fields {
    type Ok = Fields;
    type Error = Error;

    fn serialize_field<T: ?Sized + Serialize>(&mut self, key: &'static str, value: &T) -> Result<(), Error> {
        self.0.push((key, serde_json::to_value(value)?));
        Ok(())
    }

    fn end(self) -> Result<Fields, Error> {
        Ok(self)
    }
}

/// Serialises a struct into [`Fields`]; anything else is an error.
struct FieldCollector;

fn not_a_struct<T>() -> Result<T, Error> {
    Err(serde::ser::Error::custom("only a struct has fields"))
}

/// The serializer's methods for the types it refuses, which take one argument besides `self`.
macro_rules! refuse {
    ($($method:ident($arg:ty)),* $(,)?) => {
        $(fn $method(self, _: $arg) -> Result<Fields, Error> { not_a_struct() })*
    };
}

impl Serializer for FieldCollector {
    type Ok = Fields;
    type Error = Error;
    type SerializeSeq = Impossible<Fields, Error>;
    type SerializeTuple = Impossible<Fields, Error>;
    type SerializeTupleStruct = Impossible<Fields, Error>;
    type SerializeTupleVariant = Impossible<Fields, Error>;
    type SerializeMap = Impossible<Fields, Error>;
    type SerializeStruct = Fields;
    type SerializeStructVariant = Impossible<Fields, Error>;

    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Fields, Error> {
        Ok(Fields(Vec::with_capacity(len)))
    }

    refuse!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_unit_struct(&'static str),
    );

    fn serialize_none(self) -> Result<Fields, Error> {
        not_a_struct()
    }

    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<Fields, Error> {
        not_a_struct()
    }

    fn serialize_unit(self) -> Result<Fields, Error> {
        not_a_struct()
    }

    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<Fields, Error> {
        not_a_struct()
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, _: &'static str, _: &T) -> Result<Fields, Error> {
        not_a_struct()
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<Fields, Error> {
        not_a_struct()
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        not_a_struct()
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Error> {
        not_a_struct()
    }

    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, Error> {
        not_a_struct()
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        not_a_struct()
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Error> {
        not_a_struct()
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        not_a_struct()
    }
}

#[cfg(test)]
mod tests {
    use serde::Serialize;
    use serde_json::json;

    use super::*;

    #[derive(Serialize)]
    struct Card {
        name: &'static str,
        cpu: f64,
        last_exit: Option<String>,
    }

    #[test]
    fn a_struct_is_written_as_serde_json_writes_it() {
        let card = Card { name: "dice", cpu: 1.5, last_exit: None };
        let fields = Fields::of(&card);
        assert_eq!(fields.get("cpu"), Some(&json!(1.5)));
        assert_eq!(fields.get("pid"), None);
        assert_eq!(serde_json::to_string(&fields).unwrap(), serde_json::to_string(&card).unwrap());
    }

    #[test]
    fn only_a_struct_has_fields() {
        assert!(FieldCollector.serialize_str("dice").is_err());
        assert!(json!({"name": "dice"}).serialize(FieldCollector).is_err(), "a map's keys are not &'static");
    }
}
