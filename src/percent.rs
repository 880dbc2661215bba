//! Percent-decoding (RFC 3986 `%XX`) of URL path segments and header values.

/// Decodes every valid `%XX` sequence once; anything else (a lone `%`, bad hex) is kept as
/// sent. None when the decoded bytes are not UTF-8.
pub fn decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn decodes_once_and_keeps_what_is_not_an_escape() {
        assert_eq!(decode("p%3A1").as_deref(), Some("p:1"));
        assert_eq!(decode("eu%2Fgpt%402").as_deref(), Some("eu/gpt@2"));
        assert_eq!(
            decode("a%252F").as_deref(),
            Some("a%2F"),
            "decoded once only"
        );
        assert_eq!(decode("100%").as_deref(), Some("100%"));
        assert_eq!(decode("%zz%4").as_deref(), Some("%zz%4"));
        assert_eq!(decode("caf%C3%A9").as_deref(), Some("café"));
        assert_eq!(decode("plain").as_deref(), Some("plain"));
        assert_eq!(decode("%FF"), None, "not UTF-8");
    }
}
