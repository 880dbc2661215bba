//! Percent-decoding (RFC 3986 `%XX`) of URL path segments and header values, and the
//! percent-escaping that makes any string a safe response header value.

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

/// The first value of query parameter `name` in `url` (`a=1&b=2` after the `?`, before any
/// `#`), `+` read as a space and percent-decoded; None when absent or not UTF-8. A small
/// reader instead of the `url` crate, whose IDNA tables would add ≈ 130 KB gzip to the wasm.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode(&k.replace('+', " "))?;
        (key == name)
            .then(|| decode(&v.replace('+', " ")))
            .flatten()
    })
}

/// `value` as a response header value: printable ASCII (0x20-0x7E) is kept, except `%`;
/// every other character (CR, LF, NUL, other controls, `%`, anything non-ASCII) becomes the
/// `%XX` escapes of its UTF-8 bytes, so the result is always accepted by the runtime's
/// `Headers`, can never start a header of its own, and `decode` gives the value back. At
/// most `max_bytes` long: cut before the first character that would not fit whole (so a
/// character's escapes are never split).
pub fn header_value(value: &str, max_bytes: usize) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(value.len().min(max_bytes));
    let mut utf8 = [0u8; 4];
    for c in value.chars() {
        let keep = (' '..='~').contains(&c) && c != '%';
        let width = if keep { 1 } else { 3 * c.len_utf8() };
        if out.len() + width > max_bytes {
            break;
        }
        if keep {
            out.push(c);
        } else {
            for b in c.encode_utf8(&mut utf8).bytes() {
                // Writing into a String cannot fail.
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{decode, header_value, query_param};

    #[test]
    fn query_params_are_read_without_the_url_crate() {
        let url = "https://gw.example/admin/api/routes?x=1&hours=6&hours=9&n%61me=a+b%21#frag";
        assert_eq!(query_param(url, "hours").as_deref(), Some("6"));
        assert_eq!(query_param(url, "name").as_deref(), Some("a b!"));
        assert_eq!(query_param(url, "frag"), None);
        assert_eq!(
            query_param("https://gw.example/a?flag", "flag").as_deref(),
            Some("")
        );
        assert_eq!(query_param("https://gw.example/a", "hours"), None);
        assert_eq!(query_param("https://gw.example/a?h=%ff", "h"), None);
    }

    #[test]
    fn header_values_keep_printable_ascii_and_escape_the_rest() {
        assert_eq!(
            header_value("gpt-4o-mini-2024-07-18", 200),
            "gpt-4o-mini-2024-07-18"
        );
        assert_eq!(header_value("a b:c/d@e, f", 200), "a b:c/d@e, f");
        assert_eq!(
            header_value("evil\r\nx-injected: 1", 200),
            "evil%0D%0Ax-injected: 1"
        );
        assert_eq!(
            header_value("nul\0tab\tdel\u{7f}", 200),
            "nul%00tab%09del%7F"
        );
        assert_eq!(
            header_value("100%", 200),
            "100%25",
            "a literal % is escaped too"
        );
        assert_eq!(
            header_value("modèle-日本", 200),
            "mod%C3%A8le-%E6%97%A5%E6%9C%AC"
        );
        assert_eq!(header_value("", 200), "");
        // Only printable ASCII comes out, and decoding gives the value back.
        for v in [
            "evil\r\nx: 1",
            "modèle-日本",
            "100%",
            "\u{1F600}\u{85}\u{2028}",
            "é%41",
        ] {
            let h = header_value(v, 200);
            assert!(h.bytes().all(|b| (0x20..=0x7E).contains(&b)), "{h:?}");
            assert_eq!(decode(&h).as_deref(), Some(v));
        }
    }

    #[test]
    fn header_values_are_capped_without_splitting_a_character() {
        assert_eq!(header_value(&"m".repeat(5000), 200), "m".repeat(200));
        assert_eq!(header_value("abcdef", 4), "abcd");
        // 199 ASCII bytes then "é" (6 escaped bytes): the é does not fit whole, so it is left out.
        let v = format!("{}é", "a".repeat(199));
        assert_eq!(header_value(&v, 200), "a".repeat(199));
        let cut = header_value(&"日本".repeat(100), 200);
        assert_eq!(cut.len(), 198, "22 whole characters of 9 escaped bytes");
        assert_eq!(decode(&cut), Some("日本".repeat(11)));
        assert_eq!(header_value("\r\n", 5), "%0D", "an escape is never split");
    }

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
