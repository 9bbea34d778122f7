//! The wire name of a unit enum variant, as its `Serialize` derive spells it (for example with
//! `#[serde(rename_all = "kebab-case")]`), so an output parameter, an audit outcome and a
//! `plan:` line use the very string `result.json` and `plan.json` carry, with no second table
//! to keep in step.
//!
//! serde hands a unit variant's (renamed) name to the serializer as a `&'static str`; the
//! serializer here keeps it and refuses everything else.

use std::fmt;

use serde::ser::{self, Impossible, Serializer};
use serde::Serialize;

/// The serialized name of `value`, a unit variant of an enum deriving `Serialize`.
///
/// # Panics
/// When `value` is not a unit variant: a programming error caught by the callers' unit tests.
pub fn variant_name<T: Serialize + ?Sized>(value: &T) -> &'static str {
    match value.serialize(NameOf) {
        Ok(name) => name,
        Err(NotUnitVariant) => panic!("variant_name: not a unit enum variant"),
    }
}

#[derive(Debug)]
struct NotUnitVariant;

impl fmt::Display for NotUnitVariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a unit enum variant")
    }
}

impl std::error::Error for NotUnitVariant {}

impl ser::Error for NotUnitVariant {
    fn custom<M: fmt::Display>(_: M) -> Self {
        NotUnitVariant
    }
}

struct NameOf;

/// `fn $name(self, _: $ty) -> Result<&'static str, NotUnitVariant>` refusing, per method.
macro_rules! refuse {
    ($($name:ident($($ty:ty),*);)*) => {$(
        fn $name(self, $(_: $ty),*) -> Result<&'static str, NotUnitVariant> {
            Err(NotUnitVariant)
        }
    )*};
}

impl Serializer for NameOf {
    type Ok = &'static str;
    type Error = NotUnitVariant;
    type SerializeSeq = Impossible<&'static str, NotUnitVariant>;
    type SerializeTuple = Impossible<&'static str, NotUnitVariant>;
    type SerializeTupleStruct = Impossible<&'static str, NotUnitVariant>;
    type SerializeTupleVariant = Impossible<&'static str, NotUnitVariant>;
    type SerializeMap = Impossible<&'static str, NotUnitVariant>;
    type SerializeStruct = Impossible<&'static str, NotUnitVariant>;
    type SerializeStructVariant = Impossible<&'static str, NotUnitVariant>;

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<&'static str, NotUnitVariant> {
        Ok(variant)
    }

    refuse! {
        serialize_bool(bool);
        serialize_i8(i8);
        serialize_i16(i16);
        serialize_i32(i32);
        serialize_i64(i64);
        serialize_u8(u8);
        serialize_u16(u16);
        serialize_u32(u32);
        serialize_u64(u64);
        serialize_f32(f32);
        serialize_f64(f64);
        serialize_char(char);
        serialize_str(&str);
        serialize_bytes(&[u8]);
        serialize_none();
        serialize_unit();
        serialize_unit_struct(&'static str);
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<&'static str, NotUnitVariant> {
        Err(NotUnitVariant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<&'static str, NotUnitVariant> {
        Err(NotUnitVariant)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<&'static str, NotUnitVariant> {
        Err(NotUnitVariant)
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, NotUnitVariant> {
        Err(NotUnitVariant)
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, NotUnitVariant> {
        Err(NotUnitVariant)
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, NotUnitVariant> {
        Err(NotUnitVariant)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, NotUnitVariant> {
        Err(NotUnitVariant)
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, NotUnitVariant> {
        Err(NotUnitVariant)
    }

    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, NotUnitVariant> {
        Err(NotUnitVariant)
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, NotUnitVariant> {
        Err(NotUnitVariant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    #[serde(rename_all = "kebab-case")]
    enum Sample {
        One,
        TwoWords,
        #[allow(dead_code)]
        Carrying(u8),
    }

    #[test]
    fn unit_variants_give_their_serialized_name() {
        assert_eq!(variant_name(&Sample::One), "one");
        assert_eq!(variant_name(&Sample::TwoWords), "two-words");
        // The same string serde_json writes into result.json / plan.json.
        assert_eq!(
            serde_json::to_value(Sample::TwoWords).unwrap(),
            serde_json::json!("two-words")
        );
    }

    #[test]
    #[should_panic(expected = "not a unit enum variant")]
    fn anything_else_is_a_programming_error() {
        variant_name(&Sample::Carrying(1));
    }
}
