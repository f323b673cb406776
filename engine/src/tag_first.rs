//! Internally tagged enums (`{"kind": "bid_placed", …fields}`) read without serde's buffering.
//!
//! serde's derived `Deserialize` for `#[serde(tag = "…")]` buffers the whole object into a
//! tree of its own before it looks for the tag, because the tag may come anywhere; for a
//! journal row that tree was 41 % of its decode. Every such object gavel reads was
//! written by serde, which writes the tag first: read first, it names the variant, and the
//! variant's fields decode straight from the input.
//!
//! An enum opts in by deriving its *externally* tagged form as inherent functions
//! (`#[serde(remote = "Self")]`) and implementing the traits through [`serialize`] and
//! [`deserialize`], which give it the internally tagged form on the wire — the same bytes as
//! `#[serde(tag = "…")]`, for struct, newtype (of a struct or map) and unit variants. An object
//! whose tag is not first still decodes, through a buffered `serde_json::Value`.

use std::fmt;

use serde::de::value::{MapAccessDeserializer, MapDeserializer, StrDeserializer};
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IgnoredAny, MapAccess, VariantAccess, Visitor,
};
use serde::ser::{self, Impossible, Serialize, SerializeMap, SerializeStruct, Serializer};

/// An enum read and written in the internally tagged form through this module: its derived
/// externally tagged serde functions (`#[serde(remote = "Self")]`) and its tag's name.
/// [`impl_serde!`](crate::tag_first::impl_serde) implements it and the serde traits.
pub(crate) trait InternallyTagged: Sized {
    /// The field that names the variant.
    const TAG: &'static str;
    fn serialize_external<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error>;
    fn deserialize_external<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error>;
}

/// Implements `Serialize` and `Deserialize` for an enum that derives them with
/// `#[serde(remote = "Self", rename_all = …)]` (externally tagged), giving it the internally
/// tagged form with the tag `$tag`.
macro_rules! impl_serde {
    ($enum:ty, $tag:literal) => {
        impl $crate::tag_first::InternallyTagged for $enum {
            const TAG: &'static str = $tag;
            fn serialize_external<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                <$enum>::serialize(self, s)
            }
            fn deserialize_external<'de, D: serde::Deserializer<'de>>(
                d: D,
            ) -> Result<Self, D::Error> {
                <$enum>::deserialize(d)
            }
        }
        impl serde::Serialize for $enum {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                $crate::tag_first::serialize(self, s)
            }
        }
        impl<'de> serde::Deserialize<'de> for $enum {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $crate::tag_first::deserialize(d)
            }
        }
    };
}
pub(crate) use impl_serde;

/// Writes `value` in the internally tagged form: one object, the tag its first field.
pub(crate) fn serialize<T: InternallyTagged, S: Serializer>(
    value: &T,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    value.serialize_external(TagFirst {
        tag: T::TAG,
        variant: None,
        inner: serializer,
    })
}

/// Reads the internally tagged form: the variant's fields straight from the input when the
/// tag comes first, through a buffered `serde_json::Value` when it does not.
pub(crate) fn deserialize<'de, T: InternallyTagged, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<T, D::Error> {
    deserializer.deserialize_map(TagFirstVisitor(std::marker::PhantomData))
}

// ---- writing -------------------------------------------------------------------------------

/// The serializer the derived externally tagged form writes through: a variant becomes an
/// object that starts with the tag. `variant` is set while a newtype variant's value (a
/// struct or a map) is written.
pub(crate) struct TagFirst<S> {
    tag: &'static str,
    variant: Option<&'static str>,
    inner: S,
}

fn unsupported<E: ser::Error>(what: &str) -> E {
    E::custom(format_args!(
        "an internally tagged variant holds a struct or a map, not {what}"
    ))
}

/// The methods of a shape the internally tagged form cannot hold, all refused.
macro_rules! refuse {
    ($($method:ident($($arg:ty),*) -> $ok:ty;)*) => {
        $(fn $method(self, $(_: $arg),*) -> Result<$ok, S::Error> {
            Err(unsupported(stringify!($method)))
        })*
    };
}

impl<S: Serializer> Serializer for TagFirst<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Impossible<S::Ok, S::Error>;
    type SerializeTuple = Impossible<S::Ok, S::Error>;
    type SerializeTupleStruct = Impossible<S::Ok, S::Error>;
    type SerializeTupleVariant = Impossible<S::Ok, S::Error>;
    type SerializeMap = S::SerializeMap;
    type SerializeStruct = S::SerializeStruct;
    type SerializeStructVariant = TaggedStruct<S::SerializeStruct>;

    refuse! {
        serialize_bool(bool) -> S::Ok;
        serialize_i8(i8) -> S::Ok;
        serialize_i16(i16) -> S::Ok;
        serialize_i32(i32) -> S::Ok;
        serialize_i64(i64) -> S::Ok;
        serialize_u8(u8) -> S::Ok;
        serialize_u16(u16) -> S::Ok;
        serialize_u32(u32) -> S::Ok;
        serialize_u64(u64) -> S::Ok;
        serialize_f32(f32) -> S::Ok;
        serialize_f64(f64) -> S::Ok;
        serialize_char(char) -> S::Ok;
        serialize_str(&str) -> S::Ok;
        serialize_bytes(&[u8]) -> S::Ok;
        serialize_none() -> S::Ok;
        serialize_unit() -> S::Ok;
        serialize_unit_struct(&'static str) -> S::Ok;
        serialize_seq(Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(usize) -> Self::SerializeTuple;
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(&'static str, u32, &'static str, usize)
            -> Self::SerializeTupleVariant;
    }

    fn serialize_some<V: ?Sized + Serialize>(self, _: &V) -> Result<S::Ok, S::Error> {
        Err(unsupported("an option"))
    }

    fn serialize_newtype_struct<V: ?Sized + Serialize>(
        self,
        _: &'static str,
        value: &V,
    ) -> Result<S::Ok, S::Error> {
        value.serialize(self)
    }

    fn serialize_unit_variant(
        self,
        name: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<S::Ok, S::Error> {
        let mut object = self.inner.serialize_struct(name, 1)?;
        object.serialize_field(self.tag, variant)?;
        object.end()
    }

    fn serialize_newtype_variant<V: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &V,
    ) -> Result<S::Ok, S::Error> {
        value.serialize(TagFirst {
            variant: Some(variant),
            ..self
        })
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        let mut object = self.inner.serialize_struct(name, len + 1)?;
        object.serialize_field(self.tag, variant)?;
        Ok(TaggedStruct(object))
    }

    /// A newtype variant's struct: its fields after the tag.
    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        let variant = self.variant.ok_or_else(|| unsupported("a bare struct"))?;
        let mut object = self.inner.serialize_struct(name, len + 1)?;
        object.serialize_field(self.tag, variant)?;
        Ok(object)
    }

    /// A newtype variant's map: its entries after the tag.
    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        let variant = self.variant.ok_or_else(|| unsupported("a bare map"))?;
        let mut object = self.inner.serialize_map(len.map(|n| n + 1))?;
        object.serialize_entry(self.tag, variant)?;
        Ok(object)
    }
}

/// A struct variant's fields, written as the fields of the object its tag began.
pub(crate) struct TaggedStruct<O>(O);

impl<O: SerializeStruct> ser::SerializeStructVariant for TaggedStruct<O> {
    type Ok = O::Ok;
    type Error = O::Error;

    fn serialize_field<V: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &V,
    ) -> Result<(), O::Error> {
        self.0.serialize_field(key, value)
    }

    fn skip_field(&mut self, key: &'static str) -> Result<(), O::Error> {
        self.0.skip_field(key)
    }

    fn end(self) -> Result<O::Ok, O::Error> {
        self.0.end()
    }
}

// ---- reading -------------------------------------------------------------------------------

struct TagFirstVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: InternallyTagged> Visitor<'de> for TagFirstVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "an object with a \"{}\" field", T::TAG)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        match map.next_key_seed(FirstKeySeed(T::TAG))? {
            None => Err(de::Error::missing_field(T::TAG)),
            Some(FirstKey::Tag) => {
                let variant: Name<'de> = map.next_value()?;
                T::deserialize_external(Variant { variant, map })
            }
            Some(FirstKey::Other(key)) => {
                let mut object = serde_json::Map::new();
                object.insert(key, map.next_value()?);
                while let Some((key, value)) = map.next_entry()? {
                    object.insert(key, value);
                }
                let variant = match object.remove(T::TAG) {
                    Some(serde_json::Value::String(name)) => Name::Owned(name),
                    Some(_) => {
                        return Err(de::Error::custom(format_args!(
                            "\"{}\" is not a string",
                            T::TAG
                        )));
                    }
                    None => return Err(de::Error::missing_field(T::TAG)),
                };
                let map = MapDeserializer::new(object.into_iter());
                T::deserialize_external(Variant { variant, map }).map_err(de::Error::custom)
            }
        }
    }
}

/// The first key of the object: the tag, or another key (kept for the buffered read).
enum FirstKey {
    Tag,
    Other(String),
}

/// A seed that reads a key as [`FirstKey`], comparing it with the tag without allocating.
#[derive(Clone, Copy)]
struct FirstKeySeed(&'static str);

impl<'de> DeserializeSeed<'de> for FirstKeySeed {
    type Value = FirstKey;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<FirstKey, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for FirstKeySeed {
    type Value = FirstKey;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<FirstKey, E> {
        Ok(if key == self.0 {
            FirstKey::Tag
        } else {
            FirstKey::Other(key.to_owned())
        })
    }
}

/// A variant's name: borrowed from the input when it can be.
enum Name<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Name<'_> {
    fn as_str(&self) -> &str {
        match self {
            Name::Borrowed(name) => name,
            Name::Owned(name) => name,
        }
    }
}

impl<'de> de::Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a variant name")
            }
            fn visit_borrowed_str<E: de::Error>(self, name: &'de str) -> Result<Name<'de>, E> {
                Ok(Name::Borrowed(name))
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<Name<'de>, E> {
                Ok(Name::Owned(name.to_owned()))
            }
            fn visit_string<E: de::Error>(self, name: String) -> Result<Name<'de>, E> {
                Ok(Name::Owned(name))
            }
        }
        deserializer.deserialize_str(NameVisitor)
    }
}

/// The rest of a tagged object, read as the externally tagged form reads an enum: the
/// variant's name, then the object's remaining entries as the variant's contents.
struct Variant<'de, A> {
    variant: Name<'de>,
    map: A,
}

impl<'de, A: MapAccess<'de>> Deserializer<'de> for Variant<'de, A> {
    type Error = A::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, A::Error> {
        visitor.visit_enum(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

impl<'de, A: MapAccess<'de>> EnumAccess<'de> for Variant<'de, A> {
    type Error = A::Error;
    type Variant = Contents<A>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Contents<A>), A::Error> {
        let value = seed.deserialize(StrDeserializer::new(self.variant.as_str()))?;
        Ok((value, Contents(self.map)))
    }
}

/// The object's entries after the tag: a struct variant's fields, a newtype variant's
/// struct (or map), or nothing for a unit variant (extra entries are ignored, as serde does).
struct Contents<A>(A);

impl<'de, A: MapAccess<'de>> VariantAccess<'de> for Contents<A> {
    type Error = A::Error;

    fn unit_variant(mut self) -> Result<(), A::Error> {
        while self.0.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        seed.deserialize(MapAccessDeserializer::new(self.0))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value, A::Error> {
        Err(de::Error::custom(
            "an internally tagged enum has no tuple variants",
        ))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        visitor.visit_map(self.0)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use gavel_protocol::views::{Empty, PlaceBidResult};
    use gavel_protocol::{BidId, TaskId};
    use serde::{Deserialize, Serialize};

    use crate::{EventKind, Reply};

    /// Every shape the module handles: struct, newtype-of-struct, newtype-of-map, unit.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(remote = "Self", rename_all = "snake_case")]
    enum Shape {
        Fields { a: u32, b: Option<String> },
        Wrapped(Inner),
        Entries(BTreeMap<String, u32>),
        Nothing,
    }
    super::impl_serde!(Shape, "shape");

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Inner {
        x: i64,
    }

    fn round_trip<T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug>(
        value: T,
        json: &str,
    ) {
        assert_eq!(serde_json::to_string(&value).unwrap(), json);
        assert_eq!(serde_json::from_str::<T>(json).unwrap(), value);
        let reader: T = serde_json::from_reader(json.as_bytes()).unwrap(); // owned strings
        assert_eq!(reader, value);
    }

    #[test]
    fn each_shape_is_written_tag_first_and_read_back() {
        round_trip(
            Shape::Fields {
                a: 1,
                b: Some("x".into()),
            },
            r#"{"shape":"fields","a":1,"b":"x"}"#,
        );
        round_trip(
            Shape::Wrapped(Inner { x: -2 }),
            r#"{"shape":"wrapped","x":-2}"#,
        );
        round_trip(
            Shape::Entries(BTreeMap::from([("k".into(), 3)])),
            r#"{"shape":"entries","k":3}"#,
        );
        round_trip(Shape::Nothing, r#"{"shape":"nothing"}"#);
    }

    /// The journal's bytes are those `#[serde(tag = "…")]` wrote before this module.
    #[test]
    fn journal_enums_keep_their_json() {
        round_trip(
            EventKind::BidCount {
                task_id: TaskId::new("t1").unwrap(),
                bid_count: 3,
            },
            r#"{"kind":"bid_count","task_id":"t1","bid_count":3}"#,
        );
        round_trip(
            Reply::PlaceBid(PlaceBidResult {
                bid_id: BidId::new("b7").unwrap(),
            }),
            r#"{"reply":"place_bid","bid_id":"b7"}"#,
        );
        round_trip(Reply::Empty(Empty {}), r#"{"reply":"empty"}"#);
    }

    #[test]
    fn a_tag_that_is_not_first_still_reads() {
        let read: Shape = serde_json::from_str(r#"{"a":1,"shape":"fields","b":null}"#).unwrap();
        assert_eq!(read, Shape::Fields { a: 1, b: None });
        let read: Shape = serde_json::from_str(r#"{"x":5,"shape":"wrapped"}"#).unwrap();
        assert_eq!(read, Shape::Wrapped(Inner { x: 5 }));
        let read: Shape = serde_json::from_str(r#"{"extra":[1],"shape":"nothing"}"#).unwrap();
        assert_eq!(read, Shape::Nothing);
    }

    #[test]
    fn a_missing_wrong_or_unknown_tag_is_an_error() {
        for (json, says) in [
            (r#"{}"#, "missing field `shape`"),
            (r#"{"a":1}"#, "missing field `shape`"),
            (r#"{"a":1,"shape":2}"#, "\"shape\" is not a string"),
            (r#"{"shape":"other"}"#, "unknown variant `other`"),
            (r#"{"b":"x","shape":"other"}"#, "unknown variant `other`"),
            (r#"{"shape":"fields","a":"one"}"#, "invalid type"),
            (r#"[1]"#, "invalid type"),
        ] {
            let error = serde_json::from_str::<Shape>(json).unwrap_err().to_string();
            assert!(error.contains(says), "{json}: {error}");
        }
    }

    #[test]
    fn a_shape_the_form_cannot_hold_is_refused_when_written() {
        #[derive(Serialize)]
        #[serde(remote = "Self")]
        enum Bare {
            Number(u32),
        }
        impl super::InternallyTagged for Bare {
            const TAG: &'static str = "t";
            fn serialize_external<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                Bare::serialize(self, s)
            }
            fn deserialize_external<'de, D: serde::Deserializer<'de>>(
                _: D,
            ) -> Result<Self, D::Error> {
                unreachable!("only written")
            }
        }
        let mut out = Vec::new();
        let error = super::serialize(&Bare::Number(1), &mut serde_json::Serializer::new(&mut out))
            .unwrap_err()
            .to_string();
        assert!(error.contains("holds a struct or a map"), "{error}");
    }
}
