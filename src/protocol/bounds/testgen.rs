//! Test-only: random valid request bodies generated from the schema table.

use super::find;
use super::schema::{Field, Ty};

/// Writes a random, valid encoding of a request from the schema table: every
/// array non-empty, strings and bytes present (sometimes null where allowed),
/// known tagged fields sometimes present, and sometimes an unknown tag.
pub(super) struct Gen {
    rng: u64,
    out: Vec<u8>,
    version: i16,
    flexible: bool,
}

impl Gen {
    pub(super) fn body(key: i16, version: i16, seed: u64) -> Vec<u8> {
        let m = find(key).unwrap();
        let mut g = Gen {
            rng: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
            out: Vec::new(),
            version,
            flexible: version >= m.flexible_from,
        };
        g.structure(m.fields);
        g.out
    }

    fn next(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn random(&mut self, n: usize) {
        for _ in 0..n {
            let b = self.next() as u8;
            self.out.push(b);
        }
    }

    fn uvarint(&mut self, mut x: u32) {
        while x >= 0x80 {
            self.out.push(x as u8 | 0x80);
            x >>= 7;
        }
        self.out.push(x as u8);
    }

    /// A length or count prefix; `None` is null.
    fn prefix(&mut self, n: Option<usize>, short: bool) {
        match (self.flexible, n) {
            (true, n) => self.uvarint(n.map_or(0, |n| n as u32 + 1)),
            (false, None) if short => self.out.extend_from_slice(&(-1i16).to_be_bytes()),
            (false, None) => self.out.extend_from_slice(&(-1i32).to_be_bytes()),
            (false, Some(n)) if short => self.out.extend_from_slice(&(n as i16).to_be_bytes()),
            (false, Some(n)) => self.out.extend_from_slice(&(n as i32).to_be_bytes()),
        }
    }

    fn structure(&mut self, fields: &'static [Field]) {
        let v = self.version;
        for f in fields.iter().filter(|f| f.inline_in(v)) {
            self.value(f.ty, f.nullable_in(v));
        }
        if !self.flexible {
            return;
        }
        let mut tagged: Vec<&Field> = fields
            .iter()
            .filter(|f| f.tagged_in(v).is_some() && self.below(2) == 0)
            .collect();
        tagged.sort_by_key(|f| f.tagged_in(v));
        let unknown = self.below(4) == 0;
        self.uvarint(tagged.len() as u32 + unknown as u32);
        for f in tagged {
            let start = self.out.len();
            self.value(f.ty, false); // non-null, so never the crate's default
            let value = self.out.split_off(start);
            self.uvarint(f.tagged_in(v).unwrap());
            self.uvarint(value.len() as u32);
            self.out.extend(value);
        }
        if unknown {
            let (tag, size) = (100 + self.below(50) as u32, self.below(5) as usize);
            self.uvarint(tag);
            self.uvarint(size as u32);
            self.random(size);
        }
    }

    fn value(&mut self, ty: Ty, nullable: bool) {
        let null = nullable && self.below(5) == 0;
        match ty {
            Ty::Int8 => self.random(1),
            Ty::Bool => {
                let b = self.below(2) as u8;
                self.out.push(b)
            }
            Ty::Int16 | Ty::Uint16 => self.random(2),
            Ty::Int32 | Ty::Uint32 => self.random(4),
            Ty::Int64 | Ty::Float64 => self.random(8),
            Ty::Uuid => self.random(16),
            Ty::String | Ty::Bytes | Ty::Records => {
                let short = matches!(ty, Ty::String);
                if null {
                    return self.prefix(None, short);
                }
                let n = self.below(7) as usize;
                self.prefix(Some(n), short);
                for _ in 0..n {
                    let c = b'a' + self.below(26) as u8;
                    self.out.push(c);
                }
            }
            Ty::ArrayOf(_) | Ty::Array(_) => {
                if null {
                    return self.prefix(None, false);
                }
                let n = 1 + self.below(2) as usize;
                self.prefix(Some(n), false);
                for _ in 0..n {
                    match ty {
                        Ty::ArrayOf(elem) => self.value(*elem, false),
                        Ty::Array(fields) => self.structure(fields),
                        _ => unreachable!(),
                    }
                }
            }
            Ty::Struct(fields) => {
                if nullable {
                    self.out.push(if null { 0xff } else { 1 });
                    if null {
                        return;
                    }
                }
                self.structure(fields)
            }
        }
    }
}
