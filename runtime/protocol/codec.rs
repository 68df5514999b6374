//! The serde format of every value on the wire: postcard's v1 encoding.
//!
//! forkmap writes its own `Serializer` and `Deserializer` for it rather than
//! calling postcard because postcard drops the message of a value's own
//! `Serialize` or `Deserialize` error (`custom("disk quota")` comes out as
//! "Serde Serialization Error"), and because the per-item hot path wants to
//! write straight into its buffer. The bytes are postcard's, to the byte: the
//! tests check this codec against postcard itself over boundary values and
//! many thousands of random ones.
//!
//! The format is not self-describing: a value is read back only by the type
//! that wrote it. Integers wider than a byte are LEB128 varints (signed ones
//! zigzagged first), floats are little-endian, strings, byte strings,
//! sequences and maps start with their length, an enum value with its
//! variant's index, an `Option` with a 0 or 1 byte; structs and tuples are
//! their fields in order, with nothing around them.

use std::fmt::{self, Display};
use std::str;

use serde::de::{
    self, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess, VariantAccess,
    Visitor,
};
use serde::ser::{self, Serialize};
use serde::Deserialize;

/// Why a value could not be encoded or decoded. Keeps the message of the
/// value's own `Serialize` or `Deserialize` (`custom`) verbatim; `Display`
/// shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CodecError {
    message: Box<str>,
}

impl CodecError {
    /// An error that says `message`. Errors are rare, so building one is
    /// kept out of the hot paths.
    #[cold]
    fn new(message: impl Into<Box<str>>) -> Self {
        CodecError {
            message: message.into(),
        }
    }

    /// The input ran out `missing` bytes before the value it was reading.
    #[cold]
    fn ended_early(missing: usize) -> Self {
        Self::new(format!("the data ended {} early", count_bytes(missing)))
    }

    /// A varint read as a `bits`-wide integer did not end in time, or ended
    /// with bits that do not fit.
    #[cold]
    fn varint_too_long(bits: u32) -> Self {
        Self::new(format!("a varint is longer than a u{bits} allows"))
    }

    /// The input ran out in the middle of a varint.
    #[cold]
    fn varint_cut_short() -> Self {
        Self::new("the data ended in the middle of a varint")
    }

    /// A whole value was read and `count` bytes were still left.
    #[cold]
    fn left_unread(count: usize) -> Self {
        let verb = if count == 1 { "was" } else { "were" };
        Self::new(format!(
            "{} {verb} left unread after the value: its Serialize and Deserialize \
             disagree, or the data holds another type",
            count_bytes(count)
        ))
    }

    /// The type asked the data what it holds, which this format cannot say.
    #[cold]
    fn not_self_describing() -> Self {
        Self::new(
            "this type decodes by asking the data what it holds (deserialize_any), but \
             forkmap's wire format is not self-describing: serde_json::Value, untagged or \
             internally tagged enums and #[serde(flatten)] cannot travel; give the value \
             a fixed shape, or send it as a string or bytes in a format of your own",
        )
    }
}

/// "1 byte", "2 bytes".
fn count_bytes(count: usize) -> String {
    if count == 1 {
        "1 byte".to_owned()
    } else {
        format!("{count} bytes")
    }
}

impl Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CodecError {}

impl ser::Error for CodecError {
    fn custom<T: Display>(message: T) -> Self {
        Self::new(message.to_string())
    }
}

impl de::Error for CodecError {
    fn custom<T: Display>(message: T) -> Self {
        Self::new(message.to_string())
    }
}

/// Where an encoder writes. `Vec<u8>` is one; a bounded buffer that can run
/// out of room is another, whose error says so (build it with
/// `serde::ser::Error::custom`).
pub(crate) trait Sink {
    /// Appends `bytes`.
    fn put(&mut self, bytes: &[u8]) -> Result<(), CodecError>;

    /// Appends one byte: most of what an encoder writes is single bytes.
    fn put_byte(&mut self, byte: u8) -> Result<(), CodecError>;
}

impl Sink for Vec<u8> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) -> Result<(), CodecError> {
        self.extend_from_slice(bytes);
        Ok(())
    }

    #[inline]
    fn put_byte(&mut self, byte: u8) -> Result<(), CodecError> {
        self.push(byte);
        Ok(())
    }
}

/// Appends the encoding of `value` to `out`. On error `out` is left as it
/// was.
#[inline]
pub(crate) fn encode<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    let start = out.len();
    encode_to(value, out).inspect_err(|_| out.truncate(start))
}

/// Writes the encoding of `value` to `sink`. On error the sink may hold the
/// first part of the value.
#[inline]
pub(crate) fn encode_to<T: Serialize + ?Sized, S: Sink>(
    value: &T,
    sink: &mut S,
) -> Result<(), CodecError> {
    value.serialize(&mut Encoder { sink })
}

/// Decodes a value that must take exactly the whole of `bytes`: bytes left
/// unread are an error saying how many (a type whose `Serialize` and
/// `Deserialize` disagree must never give a silent wrong value).
#[inline]
pub(crate) fn decode<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, CodecError> {
    match decode_prefix(bytes)? {
        (value, []) => Ok(value),
        (_, rest) => Err(CodecError::left_unread(rest.len())),
    }
}

/// Decodes a value from the front of `bytes` and returns the rest (for
/// headers followed by raw tails).
#[inline]
pub(crate) fn decode_prefix<'de, T: Deserialize<'de>>(
    bytes: &'de [u8],
) -> Result<(T, &'de [u8]), CodecError> {
    let mut decoder = Decoder { input: bytes };
    let value = T::deserialize(&mut decoder)?;
    Ok((value, decoder.input))
}

/// Appends `value` as a LEB128 varint, as postcard writes a `u32`, for the
/// framing code that delimits values. The same bytes as the encoder's
/// [`put_varint`], without its error, since a `Vec` always takes them.
#[inline]
pub(crate) fn push_varint(out: &mut Vec<u8>, value: u32) {
    let mut rest = value;
    while rest >= 0x80 {
        out.push(rest as u8 | 0x80);
        rest >>= 7;
    }
    out.push(rest as u8);
}

/// Reads a varint written by [`push_varint`] from the front of `bytes`:
/// its value and how many bytes it took; `None` if it is cut short or over
/// a `u32`.
#[inline]
pub(crate) fn read_varint(bytes: &[u8]) -> Option<(u32, usize)> {
    let (value, taken) = parse_varint::<32>(bytes).ok()?;
    Some((value as u32, taken))
}

/// Why the bytes at the front of an input are not a varint.
enum VarintFault {
    /// The input ended before the varint did.
    CutShort,
    /// The varint has more bytes, or higher bits, than its type holds.
    TooLong,
}

/// Reads a LEB128 varint of an integer `BITS` wide (16, 32 or 64) from the
/// front of `bytes`: its value and how many bytes it took.
///
/// Like postcard, this takes a varint of at most `ceil(BITS / 7)` bytes
/// whose last byte holds no bits beyond `BITS`; it accepts redundant
/// encodings (`0x80 0x00` for 0) that fit in that length.
#[inline]
fn parse_varint<const BITS: u32>(bytes: &[u8]) -> Result<(u64, usize), VarintFault> {
    let max_len = BITS.div_ceil(7) as usize;
    let mut value = 0;
    for at in 0..max_len {
        let &byte = bytes.get(at).ok_or(VarintFault::CutShort)?;
        value |= u64::from(byte & 0x7f) << (7 * at);
        if byte < 0x80 {
            let spills = at + 1 == max_len && u32::from(byte) >> (BITS % 7) != 0;
            return if spills {
                Err(VarintFault::TooLong)
            } else {
                Ok((value, at + 1))
            };
        }
    }
    Err(VarintFault::TooLong)
}

/// [`parse_varint`] for a `u128`, which takes up to 19 bytes.
fn parse_varint_u128(bytes: &[u8]) -> Result<(u128, usize), VarintFault> {
    const MAX_LEN: usize = 19;
    let mut value = 0;
    for at in 0..MAX_LEN {
        let &byte = bytes.get(at).ok_or(VarintFault::CutShort)?;
        value |= u128::from(byte & 0x7f) << (7 * at);
        if byte < 0x80 {
            let spills = at + 1 == MAX_LEN && byte >> (128 % 7) != 0;
            return if spills {
                Err(VarintFault::TooLong)
            } else {
                Ok((value, at + 1))
            };
        }
    }
    Err(VarintFault::TooLong)
}

/// Writes `value` as a LEB128 varint: seven bits a byte, lowest first, the
/// top bit set on every byte but the last. A value below 128 is one byte.
#[inline]
fn put_varint<S: Sink>(sink: &mut S, value: u64) -> Result<(), CodecError> {
    let mut rest = value;
    while rest >= 0x80 {
        sink.put_byte(rest as u8 | 0x80)?;
        rest >>= 7;
    }
    sink.put_byte(rest as u8)
}

/// [`put_varint`] for a `u128`.
fn put_varint_u128<S: Sink>(sink: &mut S, value: u128) -> Result<(), CodecError> {
    let mut rest = value;
    while rest >= 0x80 {
        sink.put_byte(rest as u8 | 0x80)?;
        rest >>= 7;
    }
    sink.put_byte(rest as u8)
}

/// Maps a signed integer to an unsigned one so that small magnitudes stay
/// small: 0, -1, 1, -2 become 0, 1, 2, 3. For a value of a narrower signed
/// type this gives the same number as zigzag at that width.
#[inline]
fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

/// [`zigzag`] undone.
#[inline]
fn unzigzag(value: u64) -> i64 {
    (value >> 1) as i64 ^ -((value & 1) as i64)
}

/// [`zigzag`] for an `i128`.
fn zigzag_i128(value: i128) -> u128 {
    ((value << 1) ^ (value >> 127)) as u128
}

/// [`zigzag_i128`] undone.
fn unzigzag_i128(value: u128) -> i128 {
    (value >> 1) as i128 ^ -((value & 1) as i128)
}

/// The serde `Serializer` that writes a value to a [`Sink`].
struct Encoder<'a, S> {
    sink: &'a mut S,
}

impl<S: Sink> Encoder<'_, S> {
    /// Writes a length, of a string, byte string, sequence or map.
    #[inline]
    fn put_len(&mut self, len: usize) -> Result<(), CodecError> {
        put_varint(self.sink, len as u64)
    }

    /// Writes the length of a sequence or map, which must be known.
    #[inline]
    fn put_known_len(&mut self, len: Option<usize>, what: &str) -> Result<(), CodecError> {
        match len {
            Some(len) => self.put_len(len),
            None => Err(CodecError::new(format!(
                "a {what} of unknown length cannot be encoded: the format writes the \
                 length first (a #[serde(flatten)] struct or an iterator without an exact \
                 size gives none); collect the items into a Vec first"
            ))),
        }
    }
}

impl<S: Sink> ser::Serializer for &mut Encoder<'_, S> {
    type Ok = ();
    type Error = CodecError;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    #[inline]
    fn is_human_readable(&self) -> bool {
        false
    }

    #[inline]
    fn serialize_bool(self, v: bool) -> Result<(), CodecError> {
        self.sink.put_byte(u8::from(v))
    }

    #[inline]
    fn serialize_i8(self, v: i8) -> Result<(), CodecError> {
        self.sink.put_byte(v as u8)
    }

    #[inline]
    fn serialize_i16(self, v: i16) -> Result<(), CodecError> {
        put_varint(self.sink, zigzag(v.into()))
    }

    #[inline]
    fn serialize_i32(self, v: i32) -> Result<(), CodecError> {
        put_varint(self.sink, zigzag(v.into()))
    }

    #[inline]
    fn serialize_i64(self, v: i64) -> Result<(), CodecError> {
        put_varint(self.sink, zigzag(v))
    }

    fn serialize_i128(self, v: i128) -> Result<(), CodecError> {
        put_varint_u128(self.sink, zigzag_i128(v))
    }

    #[inline]
    fn serialize_u8(self, v: u8) -> Result<(), CodecError> {
        self.sink.put_byte(v)
    }

    #[inline]
    fn serialize_u16(self, v: u16) -> Result<(), CodecError> {
        put_varint(self.sink, v.into())
    }

    #[inline]
    fn serialize_u32(self, v: u32) -> Result<(), CodecError> {
        put_varint(self.sink, v.into())
    }

    #[inline]
    fn serialize_u64(self, v: u64) -> Result<(), CodecError> {
        put_varint(self.sink, v)
    }

    fn serialize_u128(self, v: u128) -> Result<(), CodecError> {
        put_varint_u128(self.sink, v)
    }

    #[inline]
    fn serialize_f32(self, v: f32) -> Result<(), CodecError> {
        self.sink.put(&v.to_le_bytes())
    }

    #[inline]
    fn serialize_f64(self, v: f64) -> Result<(), CodecError> {
        self.sink.put(&v.to_le_bytes())
    }

    #[inline]
    fn serialize_char(self, v: char) -> Result<(), CodecError> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }

    #[inline]
    fn serialize_str(self, v: &str) -> Result<(), CodecError> {
        self.serialize_bytes(v.as_bytes())
    }

    #[inline]
    fn serialize_bytes(self, v: &[u8]) -> Result<(), CodecError> {
        self.put_len(v.len())?;
        self.sink.put(v)
    }

    #[inline]
    fn serialize_none(self) -> Result<(), CodecError> {
        self.sink.put_byte(0)
    }

    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), CodecError> {
        self.sink.put_byte(1)?;
        value.serialize(self)
    }

    #[inline]
    fn serialize_unit(self) -> Result<(), CodecError> {
        Ok(())
    }

    #[inline]
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), CodecError> {
        Ok(())
    }

    #[inline]
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
    ) -> Result<(), CodecError> {
        put_varint(self.sink, variant_index.into())
    }

    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), CodecError> {
        value.serialize(self)
    }

    #[inline]
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
        value: &T,
    ) -> Result<(), CodecError> {
        put_varint(self.sink, variant_index.into())?;
        value.serialize(self)
    }

    #[inline]
    fn serialize_seq(self, len: Option<usize>) -> Result<Self, CodecError> {
        self.put_known_len(len, "sequence")?;
        Ok(self)
    }

    #[inline]
    fn serialize_tuple(self, _len: usize) -> Result<Self, CodecError> {
        Ok(self)
    }

    #[inline]
    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Self, CodecError> {
        Ok(self)
    }

    #[inline]
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self, CodecError> {
        put_varint(self.sink, variant_index.into())?;
        Ok(self)
    }

    #[inline]
    fn serialize_map(self, len: Option<usize>) -> Result<Self, CodecError> {
        self.put_known_len(len, "map")?;
        Ok(self)
    }

    #[inline]
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self, CodecError> {
        Ok(self)
    }

    #[inline]
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self, CodecError> {
        put_varint(self.sink, variant_index.into())?;
        Ok(self)
    }
}

/// Implements one of serde's compound-value traits for the encoder: each
/// element or field is written in turn, with nothing between or after them.
macro_rules! encode_elements {
    ($compound:ident :: $write:ident $(, $key:ty)?) => {
        impl<S: Sink> ser::$compound for &mut Encoder<'_, S> {
            type Ok = ();
            type Error = CodecError;

            #[inline]
            fn $write<T: Serialize + ?Sized>(
                &mut self,
                $(_key: $key,)?
                value: &T,
            ) -> Result<(), CodecError> {
                value.serialize(&mut **self)
            }

            #[inline]
            fn end(self) -> Result<(), CodecError> {
                Ok(())
            }
        }
    };
}

encode_elements!(SerializeSeq::serialize_element);
encode_elements!(SerializeTuple::serialize_element);
encode_elements!(SerializeTupleStruct::serialize_field);
encode_elements!(SerializeTupleVariant::serialize_field);
encode_elements!(SerializeStruct::serialize_field, &'static str);
encode_elements!(SerializeStructVariant::serialize_field, &'static str);

impl<S: Sink> ser::SerializeMap for &mut Encoder<'_, S> {
    type Ok = ();
    type Error = CodecError;

    #[inline]
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), CodecError> {
        key.serialize(&mut **self)
    }

    #[inline]
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CodecError> {
        value.serialize(&mut **self)
    }

    #[inline]
    fn end(self) -> Result<(), CodecError> {
        Ok(())
    }
}

/// The serde `Deserializer` that reads a value from the front of a slice.
/// Strings and byte strings are lent from the slice.
struct Decoder<'de> {
    /// What is still to be read.
    input: &'de [u8],
}

impl<'de> Decoder<'de> {
    /// Takes one byte.
    #[inline]
    fn take_byte(&mut self) -> Result<u8, CodecError> {
        let (&byte, rest) = self
            .input
            .split_first()
            .ok_or_else(|| CodecError::ended_early(1))?;
        self.input = rest;
        Ok(byte)
    }

    /// Takes the next `len` bytes, checking first that there are as many.
    #[inline]
    fn take(&mut self, len: usize) -> Result<&'de [u8], CodecError> {
        match self.input.split_at_checked(len) {
            Some((taken, rest)) => {
                self.input = rest;
                Ok(taken)
            }
            None => Err(CodecError::ended_early(len - self.input.len())),
        }
    }

    /// Takes the next `N` bytes.
    #[inline]
    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        match self.input.split_first_chunk::<N>() {
            Some((&taken, rest)) => {
                self.input = rest;
                Ok(taken)
            }
            None => Err(CodecError::ended_early(N - self.input.len())),
        }
    }

    /// Takes a varint of an integer `BITS` wide; a value below 128 is one
    /// byte, read here without a loop.
    #[inline]
    fn take_varint<const BITS: u32>(&mut self) -> Result<u64, CodecError> {
        if let [byte @ 0..=0x7f, rest @ ..] = self.input {
            self.input = rest;
            return Ok(u64::from(*byte));
        }
        self.take_long_varint::<BITS>()
    }

    /// [`Decoder::take_varint`] for the varints of more than one byte, and
    /// for the ones that are not varints. Inlined too: out of line, a
    /// 4-byte varint reads half as fast.
    #[inline]
    fn take_long_varint<const BITS: u32>(&mut self) -> Result<u64, CodecError> {
        match parse_varint::<BITS>(self.input) {
            Ok((value, taken)) => {
                self.input = &self.input[taken..];
                Ok(value)
            }
            Err(fault) => Err(varint_error(fault, BITS)),
        }
    }

    /// Takes the varint of a `u128`.
    fn take_varint_u128(&mut self) -> Result<u128, CodecError> {
        match parse_varint_u128(self.input) {
            Ok((value, taken)) => {
                self.input = &self.input[taken..];
                Ok(value)
            }
            Err(fault) => Err(varint_error(fault, 128)),
        }
    }

    /// Takes a length: of a string, byte string, sequence, map or char.
    #[inline]
    fn take_len(&mut self) -> Result<usize, CodecError> {
        Ok(self.take_varint::<{ usize::BITS }>()? as usize)
    }

    /// Takes a length, then that many bytes.
    #[inline]
    fn take_bytes(&mut self) -> Result<&'de [u8], CodecError> {
        let len = self.take_len()?;
        self.take(len)
    }

    /// Takes a length, then that many bytes of UTF-8.
    #[inline]
    fn take_str(&mut self) -> Result<&'de str, CodecError> {
        str::from_utf8(self.take_bytes()?)
            .map_err(|e| CodecError::new(format!("a string is not valid UTF-8: {e}")))
    }

    /// Takes a char: a length of at most 4, then one character of UTF-8.
    fn take_char(&mut self) -> Result<char, CodecError> {
        let len = self.take_len()?;
        if len > 4 {
            return Err(CodecError::new(format!(
                "a char must be 1 to 4 bytes of UTF-8, not {len}"
            )));
        }
        let bytes = self.take(len)?;
        let mut chars = str::from_utf8(bytes).unwrap_or_default().chars();
        match (chars.next(), chars.next()) {
            (Some(char), None) => Ok(char),
            _ => Err(CodecError::new(format!(
                "a char must be one character in UTF-8, not the bytes {bytes:?}"
            ))),
        }
    }

    /// Takes the variant index of an enum value.
    #[inline]
    fn take_variant_index(&mut self) -> Result<u32, CodecError> {
        Ok(self.take_varint::<32>()? as u32)
    }

    /// Hands `visitor` the next `len` values.
    #[inline]
    fn visit_elements<V: Visitor<'de>>(
        &mut self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, CodecError> {
        visitor.visit_seq(Elements {
            decoder: self,
            left: len,
        })
    }
}

/// The error for a varint of an integer `bits` wide that did not read.
#[cold]
fn varint_error(fault: VarintFault, bits: u32) -> CodecError {
    match fault {
        VarintFault::CutShort => CodecError::varint_cut_short(),
        VarintFault::TooLong => CodecError::varint_too_long(bits),
    }
}

impl<'de> de::Deserializer<'de> for &mut Decoder<'de> {
    type Error = CodecError;

    #[inline]
    fn is_human_readable(&self) -> bool {
        false
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, CodecError> {
        Err(CodecError::not_self_describing())
    }

    #[inline]
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        match self.take_byte()? {
            0 => visitor.visit_bool(false),
            1 => visitor.visit_bool(true),
            other => Err(CodecError::new(format!(
                "a bool must be 0 or 1, not {other}"
            ))),
        }
    }

    #[inline]
    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        visitor.visit_i8(self.take_byte()? as i8)
    }

    #[inline]
    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        visitor.visit_i16(unzigzag(self.take_varint::<16>()?) as i16)
    }

    #[inline]
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        visitor.visit_i32(unzigzag(self.take_varint::<32>()?) as i32)
    }

    #[inline]
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        visitor.visit_i64(unzigzag(self.take_varint::<64>()?))
    }

    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        visitor.visit_i128(unzigzag_i128(self.take_varint_u128()?))
    }

    #[inline]
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        visitor.visit_u8(self.take_byte()?)
    }

    #[inline]
    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        visitor.visit_u16(self.take_varint::<16>()? as u16)
    }

    #[inline]
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        visitor.visit_u32(self.take_varint::<32>()? as u32)
    }

    #[inline]
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        visitor.visit_u64(self.take_varint::<64>()?)
    }

    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        visitor.visit_u128(self.take_varint_u128()?)
    }

    #[inline]
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        visitor.visit_f32(f32::from_le_bytes(self.take_array()?))
    }

    #[inline]
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        visitor.visit_f64(f64::from_le_bytes(self.take_array()?))
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        visitor.visit_char(self.take_char()?)
    }

    #[inline]
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        visitor.visit_borrowed_str(self.take_str()?)
    }

    #[inline]
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        self.deserialize_str(visitor)
    }

    #[inline]
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        visitor.visit_borrowed_bytes(self.take_bytes()?)
    }

    #[inline]
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        self.deserialize_bytes(visitor)
    }

    #[inline]
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        match self.take_byte()? {
            0 => visitor.visit_none(),
            1 => visitor.visit_some(self),
            other => Err(CodecError::new(format!(
                "an Option must start with 0 (None) or 1 (Some), not {other}"
            ))),
        }
    }

    #[inline]
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        visitor.visit_unit()
    }

    #[inline]
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, CodecError> {
        visitor.visit_unit()
    }

    #[inline]
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, CodecError> {
        visitor.visit_newtype_struct(self)
    }

    #[inline]
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        let len = self.take_len()?;
        self.visit_elements(len, visitor)
    }

    #[inline]
    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, CodecError> {
        self.visit_elements(len, visitor)
    }

    #[inline]
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, CodecError> {
        self.visit_elements(len, visitor)
    }

    #[inline]
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        let len = self.take_len()?;
        visitor.visit_map(Elements {
            decoder: self,
            left: len,
        })
    }

    #[inline]
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, CodecError> {
        self.visit_elements(fields.len(), visitor)
    }

    #[inline]
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, CodecError> {
        visitor.visit_enum(self)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, CodecError> {
        Err(CodecError::new(
            "this type decodes a field or variant by its name, but forkmap's wire format \
             carries no names, only positions and variant indices",
        ))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, CodecError> {
        Err(CodecError::new(
            "this type skips a value it does not know, but forkmap's wire format is not \
             self-describing: a value can be read, or skipped, only by its own type",
        ))
    }
}

/// The elements of a sequence, tuple or struct, or the entries of a map,
/// as serde's visitors read them: `left` more to come.
struct Elements<'a, 'de> {
    decoder: &'a mut Decoder<'de>,
    left: usize,
}

impl<'de> Elements<'_, 'de> {
    /// Reads the next element, if any are left.
    #[inline]
    fn take_next<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, CodecError> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.decoder).map(Some)
    }

    /// How many elements are left, capped at the bytes left: a hostile
    /// length cannot make a visitor allocate more than the input could fill.
    #[inline]
    fn capped_len(&self) -> Option<usize> {
        Some(self.left.min(self.decoder.input.len()))
    }
}

impl<'de> SeqAccess<'de> for Elements<'_, 'de> {
    type Error = CodecError;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, CodecError> {
        self.take_next(seed)
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        self.capped_len()
    }
}

impl<'de> MapAccess<'de> for Elements<'_, 'de> {
    type Error = CodecError;

    #[inline]
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, CodecError> {
        self.take_next(seed)
    }

    #[inline]
    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, CodecError> {
        seed.deserialize(&mut *self.decoder)
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        self.capped_len()
    }
}

impl<'de> EnumAccess<'de> for &mut Decoder<'de> {
    type Error = CodecError;
    type Variant = Self;

    #[inline]
    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self), CodecError> {
        let index = self.take_variant_index()?;
        let variant = seed.deserialize(index.into_deserializer())?;
        Ok((variant, self))
    }
}

impl<'de> VariantAccess<'de> for &mut Decoder<'de> {
    type Error = CodecError;

    #[inline]
    fn unit_variant(self) -> Result<(), CodecError> {
        Ok(())
    }

    #[inline]
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, CodecError> {
        seed.deserialize(self)
    }

    #[inline]
    fn tuple_variant<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, CodecError> {
        self.visit_elements(len, visitor)
    }

    #[inline]
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, CodecError> {
        self.visit_elements(fields.len(), visitor)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};
    use std::fmt::Debug;
    use std::marker::PhantomData;
    use std::net::{IpAddr, Ipv6Addr, SocketAddr};
    use std::time::Duration;

    use serde::de::{DeserializeOwned, IgnoredAny};
    use serde::ser::{SerializeStructVariant, SerializeTupleVariant};
    use serde::{Deserializer, Serialize, Serializer};
    use serde_bytes::ByteBuf;

    use super::*;
    use crate::test_rng::Rng;

    /// Encodes `value` into a new `Vec`.
    fn encoded<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
        let mut out = Vec::new();
        encode(value, &mut out).unwrap();
        out
    }

    /// Checks that this codec writes postcard's bytes for `value` and reads
    /// postcard's bytes back as `value`.
    fn assert_agrees<T>(value: &T)
    where
        T: Serialize + DeserializeOwned + PartialEq + Debug,
    {
        let postcard = postcard::to_stdvec(value).unwrap();
        assert_eq!(encoded(value), postcard, "encoding {value:?}");
        assert_eq!(
            decode::<T>(&postcard).unwrap(),
            *value,
            "decoding {value:?}"
        );
    }

    /// The values around every varint boundary of an unsigned integer
    /// `width` bits wide: each `2^k - 1` and `2^k`, and the maximum.
    fn unsigned_boundaries(width: u32) -> Vec<u128> {
        let max = u128::MAX >> (128 - width);
        let mut values: Vec<u128> = (0..width).flat_map(|k| [(1 << k) - 1, 1 << k]).collect();
        values.extend([127, 128, 16383, 16384, max - 1, max]);
        values.retain(|&v| v <= max);
        values
    }

    /// The values around every varint boundary of a signed integer `width`
    /// bits wide, once zigzagged, with their negatives, and the minimum.
    fn signed_boundaries(width: u32) -> Vec<i128> {
        let max = i128::MAX >> (128 - width);
        let magnitudes = unsigned_boundaries(width - 1)
            .into_iter()
            .map(|v| v as i128);
        let mut values: Vec<i128> = magnitudes.flat_map(|v| [v, -v, -v - 1]).collect();
        values.extend([-1, 1, -64, 64, -65, -max - 1, max]);
        values
    }

    #[test]
    fn agrees_with_postcard_on_integers_at_every_varint_boundary() {
        for v in unsigned_boundaries(8) {
            assert_agrees(&(v as u8));
        }
        for v in unsigned_boundaries(16) {
            assert_agrees(&(v as u16));
        }
        for v in unsigned_boundaries(32) {
            assert_agrees(&(v as u32));
        }
        for v in unsigned_boundaries(64) {
            assert_agrees(&(v as u64));
            assert_agrees(&(v as usize));
        }
        for v in unsigned_boundaries(128) {
            assert_agrees(&v);
        }
        for v in signed_boundaries(8) {
            assert_agrees(&(v as i8));
        }
        for v in signed_boundaries(16) {
            assert_agrees(&(v as i16));
        }
        for v in signed_boundaries(32) {
            assert_agrees(&(v as i32));
        }
        for v in signed_boundaries(64) {
            assert_agrees(&(v as i64));
            assert_agrees(&(v as isize));
        }
        for v in signed_boundaries(128) {
            assert_agrees(&v);
        }
        assert_eq!(encoded(&u64::MAX).len(), 10);
        assert_eq!(encoded(&u128::MAX).len(), 19);
        assert_eq!(encoded(&i64::MIN), encoded(&u64::MAX));
    }

    #[test]
    fn agrees_with_postcard_on_floats_bit_for_bit() {
        let f32s = [
            0.0,
            -0.0,
            1.5,
            f32::MIN_POSITIVE,
            f32::from_bits(1),
            f32::MAX,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::from_bits(0x7fc0_0001),
            f32::from_bits(0xff80_0001),
        ];
        for v in f32s {
            let postcard = postcard::to_stdvec(&v).unwrap();
            assert_eq!(encoded(&v), postcard);
            assert_eq!(decode::<f32>(&postcard).unwrap().to_bits(), v.to_bits());
        }
        let f64s = [
            0.0,
            -0.0,
            -2.25,
            f64::MIN_POSITIVE,
            f64::from_bits(1),
            f64::MAX,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            f64::from_bits(0x7ff8_0000_0000_0001),
            f64::from_bits(0xfff0_0000_0000_0001),
        ];
        for v in f64s {
            let postcard = postcard::to_stdvec(&v).unwrap();
            assert_eq!(encoded(&v), postcard);
            assert_eq!(decode::<f64>(&postcard).unwrap().to_bits(), v.to_bits());
        }
    }

    #[test]
    fn agrees_with_postcard_on_chars_strings_and_bytes() {
        for c in [
            '\0',
            'a',
            '\x7f',
            'é',
            'ß',
            '€',
            '\u{ffff}',
            '😀',
            char::MAX,
        ] {
            assert_agrees(&c);
        }
        let long = "ünïcödé ".repeat(40);
        for s in ["", "a", "hello, world", long.as_str()] {
            assert_agrees(&s.to_owned());
        }
        for len in [0, 1, 127, 128, 300, 20_000] {
            let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
            assert_agrees(&ByteBuf::from(bytes.clone()));
            assert_agrees(&bytes);
        }
    }

    /// A struct of no fields, which encodes to nothing.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct UnitStruct;

    /// A struct of one unnamed field, which encodes as that field.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct NewtypeStruct(u64);

    /// A struct of unnamed fields.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct TupleStruct(u8, i64, String);

    /// An enum with a variant of each of serde's four kinds.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum EveryVariant {
        Unit,
        Newtype(u32),
        Tuple(i8, String),
        Struct { id: u64, flag: Option<bool> },
    }

    /// A struct of named fields, of most kinds, nested.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Record {
        id: u32,
        name: String,
        tags: Vec<String>,
        kind: EveryVariant,
        unit: UnitStruct,
        #[serde(with = "serde_bytes")]
        blob: Vec<u8>,
        nested: Option<Box<Record>>,
    }

    #[test]
    fn agrees_with_postcard_on_structs_enums_and_collections() {
        assert_agrees(&());
        assert_agrees(&UnitStruct);
        assert_agrees(&NewtypeStruct(300));
        assert_agrees(&TupleStruct(7, -70_000, "x".into()));
        for v in [
            EveryVariant::Unit,
            EveryVariant::Newtype(u32::MAX),
            EveryVariant::Tuple(-1, "tuple".into()),
            EveryVariant::Struct {
                id: 1 << 40,
                flag: Some(false),
            },
        ] {
            assert_agrees(&v);
        }
        let leaf = Record {
            id: 1,
            name: "leaf".into(),
            tags: vec![],
            kind: EveryVariant::Unit,
            unit: UnitStruct,
            blob: vec![0, 255],
            nested: None,
        };
        assert_agrees(&Record {
            id: 2,
            name: "root".into(),
            tags: vec!["a".into(), "".into()],
            kind: EveryVariant::Newtype(9),
            unit: UnitStruct,
            blob: vec![],
            nested: Some(Box::new(leaf)),
        });
        assert_agrees(&None::<u8>);
        assert_agrees(&Some(None::<u8>));
        assert_agrees(&Some(Some(())));
        assert_agrees(&vec![1u64, 1 << 20, u64::MAX]);
        assert_agrees(&vec![vec![], vec![1u16], vec![2, 3]]);
        assert_agrees(&(0..200).collect::<Vec<u32>>());
        assert_agrees(&[1u8, 2, 3]);
        assert_agrees(&[[0i32; 2]; 3]);
        assert_agrees(&[0u8; 0]);
        assert_agrees(&(1u8,));
        assert_agrees(&(1u8, -2i16));
        assert_agrees(&(1u8, -2i16, 3u32, -4i64, 5u128, 'x', "s".to_owned(), true));
        assert_agrees(&BTreeMap::from([
            (1u8, "one".to_owned()),
            (200, "many".into()),
        ]));
        assert_agrees(&BTreeMap::<String, u8>::new());
        assert_agrees(&HashMap::from([("key".to_owned(), vec![1.5f64])]));
        assert_agrees(&Box::new(42u64));
        assert_agrees(&Ok::<u8, String>(1));
        assert_agrees(&Err::<u8, String>("failed".into()));
        assert_agrees(&PhantomData::<String>);
        assert_agrees(&Duration::new(5, 999_999_999));
        // Addresses serialize differently for human-readable formats.
        assert_agrees(&IpAddr::from(Ipv6Addr::LOCALHOST));
        assert_agrees(&"127.0.0.1:8080".parse::<SocketAddr>().unwrap());
    }

    /// An enum value whose variant index is chosen at run time, to reach
    /// indices past 127 that a derived enum of a few variants never writes.
    /// The index modulo 4 picks the variant's kind; a unit variant's payload
    /// is 0.
    #[derive(Debug, PartialEq)]
    struct FarVariant {
        index: u32,
        payload: u16,
    }

    impl Serialize for FarVariant {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let (index, payload) = (self.index, &self.payload);
            match index % 4 {
                0 => serializer.serialize_unit_variant("Far", index, "Unit"),
                1 => serializer.serialize_newtype_variant("Far", index, "Newtype", payload),
                2 => {
                    let mut tuple = serializer.serialize_tuple_variant("Far", index, "Tuple", 1)?;
                    tuple.serialize_field(payload)?;
                    tuple.end()
                }
                _ => {
                    let mut fields =
                        serializer.serialize_struct_variant("Far", index, "Struct", 1)?;
                    fields.serialize_field("payload", payload)?;
                    fields.end()
                }
            }
        }
    }

    impl<'de> Deserialize<'de> for FarVariant {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_enum("Far", &[], FarVisitor)
        }
    }

    /// Reads a [`FarVariant`], or the one field of its tuple and struct
    /// variants.
    struct FarVisitor;

    impl<'de> Visitor<'de> for FarVisitor {
        type Value = FarVariant;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a FarVariant")
        }

        fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<FarVariant, A::Error> {
            let (index, variant) = data.variant::<u32>()?;
            let payload = match index % 4 {
                0 => variant.unit_variant().map(|()| 0)?,
                1 => variant.newtype_variant()?,
                2 => variant.tuple_variant(1, FarVisitor)?.payload,
                _ => variant.struct_variant(&["payload"], FarVisitor)?.payload,
            };
            Ok(FarVariant { index, payload })
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<FarVariant, A::Error> {
            let payload = seq
                .next_element()?
                .ok_or_else(|| de::Error::invalid_length(0, &self))?;
            Ok(FarVariant { index: 0, payload })
        }
    }

    #[test]
    fn agrees_with_postcard_on_variant_indices_past_127() {
        for index in unsigned_boundaries(32) {
            for kind in 0..4 {
                let index = (index as u32 & !3) | kind;
                let payload = if kind == 0 { 0 } else { 300 };
                assert_agrees(&FarVariant { index, payload });
            }
        }
        assert_eq!(
            encoded(&FarVariant {
                index: 128,
                payload: 0
            }),
            [0x80, 0x01]
        );
    }

    /// A value of many shapes, for the random tests: every kind of thing the
    /// format writes, nested.
    #[derive(Debug, Serialize, Deserialize)]
    enum Shape {
        Unit,
        Flag(bool),
        Byte(u8),
        Small(i8),
        U16(u16),
        I16(i16),
        U32(u32),
        I32(i32),
        U64(u64),
        I64(i64),
        U128(u128),
        I128(i128),
        F32(f32),
        F64(f64),
        Char(char),
        Text(String),
        Blob(#[serde(with = "serde_bytes")] Vec<u8>),
        Nothing(()),
        Array([u16; 3]),
        Tuple((i32, u8, bool)),
        Maybe(Option<Box<Shape>>),
        List(Vec<Shape>),
        Table(BTreeMap<String, Shape>),
        Pair(Box<Shape>, Box<Shape>),
        Named {
            id: u64,
            name: String,
            inner: Box<Shape>,
        },
    }

    /// A random number of at most `width` significant bits, the width itself
    /// random too, so that every length of varint comes up.
    fn sized(rng: &mut Rng, width: u32) -> u128 {
        let keep = rng.below(width as usize + 1) as u32;
        let bits = u128::from(rng.next()) << 64 | u128::from(rng.next());
        bits.checked_shr(128 - keep).unwrap_or(0)
    }

    /// A random signed number that fits in `width` bits, of either sign and
    /// any magnitude.
    fn signed(rng: &mut Rng, width: u32) -> i128 {
        let magnitude = sized(rng, width - 1) as i128;
        if rng.below(2) == 0 {
            magnitude
        } else {
            -magnitude - 1
        }
    }

    /// A random char, of any length in UTF-8.
    fn random_char(rng: &mut Rng) -> char {
        char::from_u32(sized(rng, 21) as u32).unwrap_or('\u{fffd}')
    }

    /// A random string, now and then long enough for a two-byte length.
    fn random_string(rng: &mut Rng) -> String {
        let len = if rng.below(10) == 0 { 200 } else { 8 };
        (0..rng.below(len)).map(|_| random_char(rng)).collect()
    }

    /// A random [`Shape`], nested at most `depth` deep: half of the values
    /// that may nest do.
    fn random_shape(rng: &mut Rng, depth: u32) -> Shape {
        const LEAVES: usize = 20;
        const NESTS: usize = 5;
        let kind = if depth > 0 && rng.below(2) == 0 {
            LEAVES + rng.below(NESTS)
        } else {
            rng.below(LEAVES)
        };
        let inner = |rng: &mut Rng| Box::new(random_shape(rng, depth - 1));
        match kind {
            0 => Shape::Unit,
            1 => Shape::Flag(rng.below(2) == 1),
            2 => Shape::Byte(rng.next() as u8),
            3 => Shape::Small(rng.next() as i8),
            4 => Shape::U16(sized(rng, 16) as u16),
            5 => Shape::I16(signed(rng, 16) as i16),
            6 => Shape::U32(sized(rng, 32) as u32),
            7 => Shape::I32(signed(rng, 32) as i32),
            8 => Shape::U64(sized(rng, 64) as u64),
            9 => Shape::I64(signed(rng, 64) as i64),
            10 => Shape::U128(sized(rng, 128)),
            11 => Shape::I128(signed(rng, 128)),
            12 => Shape::F32(f32::from_bits(rng.next() as u32)),
            13 => Shape::F64(f64::from_bits(rng.next())),
            14 => Shape::Char(random_char(rng)),
            15 => Shape::Text(random_string(rng)),
            16 => {
                let max = if rng.below(10) == 0 { 300 } else { 8 };
                Shape::Blob(rng.bytes(max))
            }
            17 => Shape::Nothing(()),
            18 => Shape::Array([rng.next() as u16, 0, sized(rng, 16) as u16]),
            19 => Shape::Tuple((signed(rng, 32) as i32, 1, false)),
            20 => Shape::Maybe((rng.below(2) == 1).then(|| inner(rng))),
            21 => Shape::List((0..rng.below(5)).map(|_| *inner(rng)).collect()),
            22 => Shape::Table(
                (0..rng.below(4))
                    .map(|_| (random_string(rng), *inner(rng)))
                    .collect(),
            ),
            23 => Shape::Pair(inner(rng), inner(rng)),
            _ => Shape::Named {
                id: sized(rng, 64) as u64,
                name: random_string(rng),
                inner: inner(rng),
            },
        }
    }

    #[test]
    fn agrees_with_postcard_on_random_nested_values() {
        let mut rng = Rng::new(0x5eed_c0de);
        for _ in 0..20_000 {
            let shape = random_shape(&mut rng, 4);
            let postcard = postcard::to_stdvec(&shape).unwrap();
            assert_eq!(encoded(&shape), postcard, "encoding {shape:?}");
            // Floats may be NaN, so compare what was read by its encoding.
            let decoded: Shape = decode(&postcard).unwrap();
            assert_eq!(encoded(&decoded), postcard, "decoding {shape:?}");
        }
    }

    /// A value whose own `Serialize` and `Deserialize` fail with a message.
    #[derive(Debug)]
    struct OverQuota;

    impl Serialize for OverQuota {
        fn serialize<S: Serializer>(&self, _serializer: S) -> Result<S::Ok, S::Error> {
            Err(ser::Error::custom("disk quota"))
        }
    }

    impl<'de> Deserialize<'de> for OverQuota {
        fn deserialize<D: Deserializer<'de>>(_deserializer: D) -> Result<Self, D::Error> {
            Err(de::Error::custom("disk quota"))
        }
    }

    #[test]
    fn custom_messages_survive_encoding_and_decoding() {
        let mut out = vec![9];
        let error = encode(&(1u8, OverQuota), &mut out).unwrap_err();
        assert_eq!(error.to_string(), "disk quota");
        assert_eq!(out, [9], "a failed encode leaves the Vec as it was");
        let error = decode::<(u8, OverQuota)>(&[1]).unwrap_err();
        assert_eq!(error.to_string(), "disk quota");
    }

    #[test]
    fn bytes_left_after_the_value_are_an_error_that_counts_them() {
        let error = decode::<u32>(&[1, 2]).unwrap_err().to_string();
        assert!(error.starts_with("1 byte was left unread"), "{error}");
        assert!(
            error.contains("Serialize and Deserialize disagree"),
            "{error}"
        );
        let error = decode::<u8>(&[1, 2, 3]).unwrap_err().to_string();
        assert!(error.starts_with("2 bytes were left unread"), "{error}");
        assert_eq!(decode_prefix::<u32>(&[1, 2]).unwrap(), (1, &[2][..]));
        assert_eq!(decode_prefix::<u32>(&[0xac, 0x02]).unwrap(), (300, &[][..]));
    }

    /// Checks that this codec and postcard read the front of `input` alike:
    /// the same value and rest, or both an error.
    fn assert_reads_like_postcard<T>(input: &[u8]) -> Option<T>
    where
        T: DeserializeOwned + PartialEq + Debug,
    {
        match (
            decode_prefix::<T>(input),
            postcard::take_from_bytes::<T>(input),
        ) {
            (Ok(ours), Ok(theirs)) => {
                assert_eq!(ours, theirs, "input {input:?}");
                Some(ours.0)
            }
            (Err(_), Err(_)) => None,
            (ours, theirs) => panic!("input {input:?}: ours {ours:?}, postcard {theirs:?}"),
        }
    }

    /// Encodings of random values of the fuzzed types, for mutating.
    fn fuzz_corpus(rng: &mut Rng) -> Vec<Vec<u8>> {
        let mut corpus = Vec::new();
        for _ in 0..300 {
            corpus.push(encoded(&random_shape(rng, 3)));
            corpus.push(encoded(&sized(rng, 64)));
            corpus.push(encoded(&random_string(rng)));
            let lists: Vec<Vec<u8>> = (0..rng.below(4)).map(|_| rng.bytes(6)).collect();
            corpus.push(encoded(&lists));
            let maybe = (rng.below(2) == 1).then(|| random_string(rng));
            let numbers: Vec<u64> = (0..rng.below(5)).map(|_| sized(rng, 64) as u64).collect();
            corpus.push(encoded(&(sized(rng, 32) as u32, maybe, numbers)));
        }
        corpus
    }

    #[test]
    fn hostile_inputs_never_panic_and_read_like_postcard() {
        let mut rng = Rng::new(0xf022);
        let corpus = fuzz_corpus(&mut rng);
        for round in 0..500_000 {
            let input = if round % 2 == 0 {
                rng.bytes(48)
            } else {
                let original = rng.below(corpus.len());
                rng.mutate(&corpus[original])
            };
            // No decoded buffer is longer than the input it came from.
            let room = input.len();
            assert_reads_like_postcard::<u64>(&input);
            if let Some(s) = assert_reads_like_postcard::<String>(&input) {
                assert!(s.capacity() <= room, "{input:?}");
            }
            if let Some(lists) = assert_reads_like_postcard::<Vec<Vec<u8>>>(&input) {
                let inner: usize = lists.iter().map(Vec::capacity).sum();
                assert!(lists.capacity() + inner <= room, "{input:?}");
            }
            if let Some((_, s, numbers)) =
                assert_reads_like_postcard::<(u32, Option<String>, Vec<u64>)>(&input)
            {
                let text = s.map_or(0, |s| s.capacity());
                assert!(text + numbers.capacity() <= room, "{input:?}");
            }
            if let Some(bytes) = assert_reads_like_postcard::<ByteBuf>(&input) {
                assert!(bytes.capacity() <= room, "{input:?}");
            }
            let ours = decode_prefix::<Shape>(&input).map(|(v, rest)| (encoded(&v), rest));
            let theirs = postcard::take_from_bytes::<Shape>(&input);
            let theirs = theirs.map(|(v, rest)| (encoded(&v), rest));
            assert_eq!(ours.ok(), theirs.ok(), "input {input:?}");
        }
    }

    /// Reads a sequence or map only to report the size hint its visitor is
    /// given.
    struct SizeHint(Option<usize>);

    impl<'de> Deserialize<'de> for SizeHint {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_seq(SizeHintVisitor)
        }
    }

    /// The visitor of [`SizeHint`].
    struct SizeHintVisitor;

    impl<'de> Visitor<'de> for SizeHintVisitor {
        type Value = SizeHint;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a sequence")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<SizeHint, A::Error> {
            Ok(SizeHint(seq.size_hint()))
        }
    }

    #[test]
    fn a_huge_claimed_length_is_an_error_before_anything_is_allocated() {
        let mut huge = Vec::new();
        put_varint(&mut huge, u64::MAX >> 1).unwrap();
        huge.extend_from_slice(&[1, 2, 3]);
        let error = decode::<String>(&huge).unwrap_err().to_string();
        let missing = (u64::MAX >> 1) - 3;
        assert_eq!(error, format!("the data ended {missing} bytes early"));
        assert!(decode::<ByteBuf>(&huge).is_err());
        assert!(decode::<Vec<u64>>(&huge).is_err());
        assert!(decode::<HashMap<u8, u8>>(&huge).is_err());
        // A visitor is never told of more elements than there are bytes left.
        let (hint, rest) = decode_prefix::<SizeHint>(&huge).unwrap();
        assert_eq!((hint.0, rest), (Some(3), &[1, 2, 3][..]));
        let (hint, _) = decode_prefix::<SizeHint>(&[2, 7, 7, 7]).unwrap();
        assert_eq!(hint.0, Some(2));
    }

    #[test]
    fn varint_helpers_round_trip_and_reject_cut_short_or_over_long_input() {
        for value in unsigned_boundaries(32) {
            let value = value as u32;
            let mut out = vec![0xee];
            push_varint(&mut out, value);
            assert_eq!(out[1..], postcard::to_stdvec(&value).unwrap());
            out.push(0xee);
            assert_eq!(read_varint(&out[1..]), Some((value, out.len() - 2)));
            assert_eq!(read_varint(&out[1..out.len() - 2]), None, "cut short");
        }
        assert_eq!(read_varint(&[]), None);
        assert_eq!(
            read_varint(&[0x80, 0x00]),
            Some((0, 2)),
            "redundant, as postcard"
        );
        assert_eq!(
            read_varint(&[0xff, 0xff, 0xff, 0xff, 0x0f]),
            Some((u32::MAX, 5))
        );
        assert_eq!(
            read_varint(&[0xff, 0xff, 0xff, 0xff, 0x10]),
            None,
            "over u32"
        );
        assert_eq!(
            read_varint(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]),
            None,
            "6 bytes"
        );
    }

    #[test]
    fn self_describing_types_are_refused_with_a_plain_message() {
        let error = decode::<serde_json::Value>(&[0]).unwrap_err().to_string();
        assert!(error.contains("not self-describing"), "{error}");
        assert!(error.contains("serde_json::Value"), "{error}");
        let error = decode::<IgnoredAny>(&[0]).unwrap_err().to_string();
        assert!(error.contains("not self-describing"), "{error}");
        assert!(postcard::from_bytes::<IgnoredAny>(&[0]).is_err());
    }

    /// The message of the error decoding `bytes` as `T`, which postcard
    /// must refuse too.
    fn decode_error<T: DeserializeOwned + Debug>(bytes: &[u8]) -> String {
        assert!(postcard::from_bytes::<T>(bytes).is_err(), "{bytes:?}");
        decode::<T>(bytes).unwrap_err().to_string()
    }

    #[test]
    fn decode_errors_say_what_is_wrong() {
        assert_eq!(decode_error::<bool>(&[7]), "a bool must be 0 or 1, not 7");
        assert_eq!(
            decode_error::<Option<u8>>(&[2]),
            "an Option must start with 0 (None) or 1 (Some), not 2"
        );
        assert_eq!(decode_error::<u8>(&[]), "the data ended 1 byte early");
        assert_eq!(
            decode_error::<f64>(&[1, 2, 3]),
            "the data ended 5 bytes early"
        );
        assert_eq!(
            decode_error::<String>(&[4, b'a']),
            "the data ended 3 bytes early"
        );
        assert_eq!(
            decode_error::<u64>(&[0x80, 0x80]),
            "the data ended in the middle of a varint"
        );
        assert_eq!(
            decode_error::<u64>(&[0xff; 10]),
            "a varint is longer than a u64 allows"
        );
        let over = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(
            decode_error::<u64>(&over),
            "a varint is longer than a u64 allows"
        );
        assert_eq!(
            decode_error::<u16>(&[0xff, 0xff, 0x04]),
            "a varint is longer than a u16 allows"
        );
        let error = decode_error::<String>(&[2, 0xc3, 0x28]);
        assert!(error.starts_with("a string is not valid UTF-8"), "{error}");
        let error = decode_error::<char>(&[2, b'a', b'b']);
        assert!(error.starts_with("a char must be one character"), "{error}");
        assert_eq!(
            decode_error::<char>(&[5, 0, 0, 0, 0, 0]),
            "a char must be 1 to 4 bytes of UTF-8, not 5"
        );
        let error = decode_error::<EveryVariant>(&[4]);
        assert!(error.contains("variant index"), "{error}");
    }

    /// Serializes as a sequence that does not say its length.
    struct Unsized;

    impl Serialize for Unsized {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_seq((0..3u8).filter(|_| true))
        }
    }

    #[test]
    fn a_sequence_of_unknown_length_is_refused_with_a_plain_message() {
        let error = encode(&Unsized, &mut Vec::new()).unwrap_err().to_string();
        assert!(
            error.starts_with("a sequence of unknown length cannot be encoded"),
            "{error}"
        );
        assert!(postcard::to_stdvec(&Unsized).is_err());
    }

    #[test]
    fn borrowed_strings_and_bytes_point_into_the_input() {
        let input = encoded(&("text", serde_bytes::Bytes::new(b"bytes")));
        let (text, bytes): (&str, &[u8]) = decode(&input).unwrap();
        assert_eq!((text, bytes), ("text", &b"bytes"[..]));
        assert!(input.as_ptr_range().contains(&text.as_ptr()));
        assert!(input.as_ptr_range().contains(&bytes.as_ptr()));
    }

    /// A sink with room for a fixed number of bytes, as a ring in shared
    /// memory will be.
    struct Bounded {
        bytes: Vec<u8>,
        room: usize,
    }

    impl Sink for Bounded {
        fn put(&mut self, bytes: &[u8]) -> Result<(), CodecError> {
            if bytes.len() > self.room - self.bytes.len() {
                return Err(ser::Error::custom("the ring is full"));
            }
            self.bytes.extend_from_slice(bytes);
            Ok(())
        }

        fn put_byte(&mut self, byte: u8) -> Result<(), CodecError> {
            self.put(&[byte])
        }
    }

    #[test]
    fn a_sink_that_runs_out_of_room_stops_the_encoder_with_its_error() {
        let value = (300u32, "hello".to_owned());
        let postcard = postcard::to_stdvec(&value).unwrap();
        let mut roomy = Bounded {
            bytes: vec![],
            room: postcard.len(),
        };
        encode_to(&value, &mut roomy).unwrap();
        assert_eq!(roomy.bytes, postcard);
        let mut cramped = Bounded {
            bytes: vec![],
            room: postcard.len() - 1,
        };
        let error = encode_to(&value, &mut cramped).unwrap_err();
        assert_eq!(error.to_string(), "the ring is full");
    }
}
