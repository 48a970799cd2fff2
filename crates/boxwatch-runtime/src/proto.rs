//! The few protobuf messages of the containerd API that enrichment needs, encoded and decoded by
//! hand (field numbers from `containerd/api/services/{containers,namespaces}/v1/*.proto`, which
//! are stable: the v1 API is frozen). Unknown fields are skipped, as protobuf requires, so newer
//! containerd versions that add fields still decode.

use std::collections::BTreeMap;

/// A decoding failure: the bytes are not the protobuf message expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodeError(pub(crate) &'static str);

/// One field's value on the wire. Groups (wire types 3 and 4) are not used by any containerd
/// message and are rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Value<'a> {
    Varint,
    Fixed64,
    Fixed32,
    Bytes(&'a [u8]),
}

/// Iterates over the (field number, value) pairs of one encoded message.
struct Fields<'a> {
    buf: &'a [u8],
}

impl<'a> Fields<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Fields { buf }
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let (&b, rest) = self.buf.split_first().ok_or(DecodeError("truncated varint"))?;
            self.buf = rest;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError("varint longer than 10 bytes"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.buf.len() {
            return Err(DecodeError("field runs past the end of the message"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn next_field(&mut self) -> Result<Option<(u64, Value<'a>)>, DecodeError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = key >> 3;
        if field == 0 {
            return Err(DecodeError("field number 0"));
        }
        let value = match key & 7 {
            0 => {
                self.varint()?;
                Value::Varint
            }
            1 => {
                self.take(8)?;
                Value::Fixed64
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| DecodeError("length overflow"))?;
                Value::Bytes(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Value::Fixed32
            }
            _ => return Err(DecodeError("unsupported wire type")),
        };
        Ok(Some((field, value)))
    }
}

fn string(v: Value<'_>) -> Result<String, DecodeError> {
    match v {
        Value::Bytes(b) => {
            std::str::from_utf8(b).map(str::to_owned).map_err(|_| DecodeError("string is not UTF-8"))
        }
        _ => Err(DecodeError("string field with a non-length-delimited wire type")),
    }
}

fn bytes(v: Value<'_>) -> Result<&[u8], DecodeError> {
    match v {
        Value::Bytes(b) => Ok(b),
        _ => Err(DecodeError("message field with a non-length-delimited wire type")),
    }
}

/// A `map<string, string>` entry: key = 1, value = 2 (either may be absent: empty string).
fn map_entry(buf: &[u8]) -> Result<(String, String), DecodeError> {
    let (mut k, mut v) = (String::new(), String::new());
    let mut f = Fields::new(buf);
    while let Some((field, value)) = f.next_field()? {
        match field {
            1 => k = string(value)?,
            2 => v = string(value)?,
            _ => {}
        }
    }
    Ok((k, v))
}

fn put_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Encodes a length-delimited field (string, bytes or embedded message).
pub(crate) fn put_bytes_field(field: u32, data: &[u8], out: &mut Vec<u8>) {
    put_varint(u64::from(field) << 3 | 2, out);
    put_varint(data.len() as u64, out);
    out.extend_from_slice(data);
}

/// `GetContainerRequest { string id = 1; }`
pub(crate) fn get_container_request(id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(id.len() + 2);
    put_bytes_field(1, id.as_bytes(), &mut out);
    out
}

/// `ListNamespacesResponse { repeated Namespace namespaces = 1; }` with
/// `Namespace { string name = 1; map<string, string> labels = 2; }`: the names.
pub(crate) fn decode_namespaces(buf: &[u8]) -> Result<Vec<String>, DecodeError> {
    let mut names = Vec::new();
    let mut f = Fields::new(buf);
    while let Some((field, value)) = f.next_field()? {
        if field != 1 {
            continue;
        }
        let mut ns = Fields::new(bytes(value)?);
        while let Some((field, value)) = ns.next_field()? {
            if field == 1 {
                names.push(string(value)?);
            }
        }
    }
    Ok(names)
}

/// The fields of containerd's `Container` message that enrichment uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Container {
    pub(crate) id: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) image: String,
    /// `Runtime.name`, e.g. `io.containerd.runc.v2`.
    pub(crate) runtime: String,
    /// `spec` (a `google.protobuf.Any`): type URL and value. containerd stores the OCI runtime
    /// spec as JSON under `types.containerd.io/opencontainers/runtime-spec/1/Spec`.
    pub(crate) spec_type_url: String,
    pub(crate) spec: Vec<u8>,
    pub(crate) sandbox: String,
}

/// `GetContainerResponse { Container container = 1; }` with
/// `Container { string id = 1; map<string,string> labels = 2; string image = 3; Runtime runtime = 4;
/// google.protobuf.Any spec = 5; string snapshotter = 6; … string sandbox = 11; }`.
pub(crate) fn decode_get_container_response(buf: &[u8]) -> Result<Container, DecodeError> {
    let mut f = Fields::new(buf);
    let mut container = None;
    while let Some((field, value)) = f.next_field()? {
        if field == 1 {
            container = Some(decode_container(bytes(value)?)?);
        }
    }
    container.ok_or(DecodeError("GetContainerResponse without a container"))
}

fn decode_container(buf: &[u8]) -> Result<Container, DecodeError> {
    let mut c = Container::default();
    let mut f = Fields::new(buf);
    while let Some((field, value)) = f.next_field()? {
        match field {
            1 => c.id = string(value)?,
            2 => {
                let (k, v) = map_entry(bytes(value)?)?;
                c.labels.insert(k, v);
            }
            3 => c.image = string(value)?,
            4 => {
                let mut r = Fields::new(bytes(value)?);
                while let Some((field, value)) = r.next_field()? {
                    if field == 1 {
                        c.runtime = string(value)?;
                    }
                }
            }
            5 => {
                // google.protobuf.Any { string type_url = 1; bytes value = 2; }
                let mut any = Fields::new(bytes(value)?);
                while let Some((field, value)) = any.next_field()? {
                    match field {
                        1 => c.spec_type_url = string(value)?,
                        2 => c.spec = bytes(value)?.to_vec(),
                        _ => {}
                    }
                }
            }
            11 => c.sandbox = string(value)?,
            _ => {}
        }
    }
    Ok(c)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Test-only encoders, to build messages the way containerd's Go code lays them out.
    pub(crate) fn put_map_entry(field: u32, k: &str, v: &str, out: &mut Vec<u8>) {
        let mut e = Vec::new();
        put_bytes_field(1, k.as_bytes(), &mut e);
        put_bytes_field(2, v.as_bytes(), &mut e);
        put_bytes_field(field, &e, out);
    }

    pub(crate) fn encode_container(c: &Container) -> Vec<u8> {
        let mut m = Vec::new();
        put_bytes_field(1, c.id.as_bytes(), &mut m);
        for (k, v) in &c.labels {
            put_map_entry(2, k, v, &mut m);
        }
        put_bytes_field(3, c.image.as_bytes(), &mut m);
        let mut rt = Vec::new();
        put_bytes_field(1, c.runtime.as_bytes(), &mut rt);
        put_bytes_field(4, &rt, &mut m);
        let mut any = Vec::new();
        put_bytes_field(1, c.spec_type_url.as_bytes(), &mut any);
        put_bytes_field(2, &c.spec, &mut any);
        put_bytes_field(5, &any, &mut m);
        put_bytes_field(6, b"overlayfs", &mut m);
        // created_at: Timestamp { int64 seconds = 1; int32 nanos = 2; } — skipped by the decoder.
        let mut ts = Vec::new();
        put_varint(1 << 3, &mut ts);
        put_varint(1_700_000_000, &mut ts);
        put_varint(2 << 3, &mut ts);
        put_varint(5, &mut ts);
        put_bytes_field(8, &ts, &mut m);
        // A fixed32 and a fixed64 field the decoder does not know.
        put_varint(40 << 3 | 5, &mut m);
        m.extend_from_slice(&[1, 2, 3, 4]);
        put_varint(41 << 3 | 1, &mut m);
        m.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        if !c.sandbox.is_empty() {
            put_bytes_field(11, c.sandbox.as_bytes(), &mut m);
        }
        let mut resp = Vec::new();
        put_bytes_field(1, &m, &mut resp);
        resp
    }

    #[test]
    fn container_roundtrip() {
        let c = Container {
            id: "abc".into(),
            labels: [("a".to_string(), "1".to_string()), ("b".to_string(), String::new())].into(),
            image: "docker.io/library/nginx:1.25".into(),
            runtime: "io.containerd.runc.v2".into(),
            spec_type_url: "types.containerd.io/opencontainers/runtime-spec/1/Spec".into(),
            spec: br#"{"ociVersion":"1.0.2"}"#.to_vec(),
            sandbox: String::new(),
        };
        assert_eq!(decode_get_container_response(&encode_container(&c)), Ok(c));
    }

    #[test]
    fn get_request_encoding() {
        assert_eq!(get_container_request("ab"), vec![0x0a, 2, b'a', b'b']);
        let long = "x".repeat(200);
        let enc = get_container_request(&long);
        assert_eq!(&enc[..3], &[0x0a, 0xc8, 0x01]);
        assert_eq!(enc.len(), 203);
    }

    #[test]
    fn namespaces() {
        let mut m = Vec::new();
        for name in ["default", "k8s.io"] {
            let mut ns = Vec::new();
            put_bytes_field(1, name.as_bytes(), &mut ns);
            put_map_entry(2, "containerd.io/defaults/snapshotter", "overlayfs", &mut ns);
            put_bytes_field(1, &ns, &mut m);
        }
        assert_eq!(decode_namespaces(&m), Ok(vec!["default".to_string(), "k8s.io".to_string()]));
        assert_eq!(decode_namespaces(&[]), Ok(vec![]));
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let good = encode_container(&Container { id: "x".into(), ..Default::default() });
        // Every truncation either decodes (a prefix can be a valid message) or errors.
        for n in 0..good.len() {
            let _ = decode_get_container_response(&good[..n]);
        }
        assert!(decode_get_container_response(&[0x0a, 0x05, 1]).is_err());
        assert!(decode_get_container_response(&[0x0b]).is_err(), "group wire type");
        assert!(decode_get_container_response(&[0x00]).is_err(), "field 0");
        assert!(decode_get_container_response(&[0x08; 12]).is_err(), "endless varint");
        assert!(decode_get_container_response(&[0x0a, 0x02, 0x0a, 0x01]).is_err());
        let mut bad_utf8 = Vec::new();
        put_bytes_field(1, &[0xff, 0xfe], &mut bad_utf8);
        let mut resp = Vec::new();
        put_bytes_field(1, &bad_utf8, &mut resp);
        assert!(decode_get_container_response(&resp).is_err());
        assert_eq!(
            decode_get_container_response(&[]),
            Err(DecodeError("GetContainerResponse without a container"))
        );
        // Pseudo-random bytes never panic.
        let mut x: u32 = 0x1234_5678;
        for _ in 0..2000 {
            let buf: Vec<u8> = (0..64)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = decode_get_container_response(&buf);
            let _ = decode_namespaces(&buf);
        }
    }
}
