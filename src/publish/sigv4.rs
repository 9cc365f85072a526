//! AWS Signature Version 4 for S3 requests, on `ring` (HMAC-SHA256, SHA-256): the canonical
//! request, the string to sign, the derived signing key and the `Authorization` header.
//! Checked against AWS's published test vectors (the SigV4 test suite and the S3 documentation
//! examples) in the tests below; a real S3-compatible server that verifies signatures checks it
//! again in the integration tests.

use ring::hmac;

use crate::auth::hex;

/// The SHA-256 of an empty payload.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// An access key pair. `Debug` is deliberately not derived: the secret must never reach a log.
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// What is signed of one request.
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The path as sent, already URI-encoded ([`encode_path`]).
    pub path: &'a str,
    /// Query parameters, not encoded; sorted and encoded here.
    pub query: &'a [(String, String)],
    /// Headers to sign (`host`, `x-amz-date`, `x-amz-content-sha256`, …), any case.
    pub headers: &'a [(String, String)],
    /// Hex SHA-256 of the body (or `UNSIGNED-PAYLOAD`).
    pub payload_sha256: &'a str,
}

/// URI encoding as SigV4 wants it: every byte but the unreserved `A-Z a-z 0-9 - _ . ~` is
/// `%XX` (upper case); `/` too unless `keep_slash`.
pub fn uri_encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An S3 object path (`/bucket/key` or `/key`) as sent and signed: S3 encodes it once, slashes kept.
pub fn encode_path(path: &str) -> String {
    uri_encode(path, true)
}

/// The query string as sent and signed: pairs sorted by encoded name then value.
pub fn canonical_query(query: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> =
        query.iter().map(|(k, v)| (uri_encode(k, false), uri_encode(v, false))).collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// The canonical request and the `SignedHeaders` list.
pub fn canonical_request(req: &SignedRequest) -> (String, String) {
    let mut headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.split_whitespace().collect::<Vec<_>>().join(" ")))
        .collect();
    headers.sort();
    let signed = headers.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(";");
    let block: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let canonical = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        req.path,
        canonical_query(req.query),
        block,
        signed,
        req.payload_sha256
    );
    (canonical, signed)
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data).as_ref().to_vec()
}

/// The key of one day, region and service.
fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k_date = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    hmac_sha256(&k_service, b"aws4_request")
}

/// The `Authorization` header value; `amz_date` is the request's `x-amz-date` (`YYYYMMDDTHHMMSSZ`).
pub fn authorization(creds: &Credentials, region: &str, service: &str, amz_date: &str, req: &SignedRequest) -> String {
    let date = amz_date.get(..8).unwrap_or(amz_date);
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let (canonical, signed) = canonical_request(req);
    let to_sign = format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", hex(&crate::auth::sha256(canonical.as_bytes())));
    let key = signing_key(&creds.secret_access_key, date, region, service);
    let signature = hex(&hmac_sha256(&key, to_sign.as_bytes()));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
        creds.access_key_id
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn signature(auth: &str) -> &str {
        auth.rsplit("Signature=").next().unwrap()
    }

    /// The SigV4 test suite's credentials, region, service and time.
    fn suite() -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
        }
    }

    /// The S3 documentation's example credentials (a different secret from the suite's).
    fn s3_doc() -> Credentials {
        Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
        }
    }

    fn suite_sign(query: &[(&str, &str)]) -> String {
        let headers = pairs(&[("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z")]);
        let query = pairs(query);
        let req =
            SignedRequest { method: "GET", path: "/", query: &query, headers: &headers, payload_sha256: EMPTY_SHA256 };
        authorization(&suite(), "us-east-1", "service", "20150830T123600Z", &req)
    }

    #[test]
    fn the_suites_get_vanilla_signature_matches() {
        assert_eq!(
            suite_sign(&[]),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn the_suites_query_order_signature_matches_whatever_the_order_sent() {
        let expected = "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500";
        assert_eq!(signature(&suite_sign(&[("Param2", "value2"), ("Param1", "value1")])), expected);
        assert_eq!(signature(&suite_sign(&[("Param1", "value1"), ("Param2", "value2")])), expected);
    }

    #[test]
    fn the_s3_get_object_example_with_a_range_matches() {
        let headers = pairs(&[
            ("host", "examplebucket.s3.amazonaws.com"),
            ("range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", "20130524T000000Z"),
        ]);
        let req = SignedRequest {
            method: "GET",
            path: "/test.txt",
            query: &[],
            headers: &headers,
            payload_sha256: EMPTY_SHA256,
        };
        let (canonical, signed) = canonical_request(&req);
        assert_eq!(signed, "host;range;x-amz-content-sha256;x-amz-date");
        assert_eq!(
            hex(&crate::auth::sha256(canonical.as_bytes())),
            "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
        );
        let auth = authorization(&s3_doc(), "us-east-1", "s3", "20130524T000000Z", &req);
        assert_eq!(signature(&auth), "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    }

    #[test]
    fn the_s3_put_object_example_with_an_escaped_key_and_a_body_matches() {
        let body_hash = hex(&crate::auth::sha256(b"Welcome to Amazon S3."));
        assert_eq!(body_hash, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
        let headers = pairs(&[
            ("date", "Fri, 24 May 2013 00:00:00 GMT"),
            ("host", "examplebucket.s3.amazonaws.com"),
            ("x-amz-content-sha256", &body_hash),
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ]);
        let path = encode_path("/test$file.text");
        assert_eq!(path, "/test%24file.text");
        let req =
            SignedRequest { method: "PUT", path: &path, query: &[], headers: &headers, payload_sha256: &body_hash };
        let auth = authorization(&s3_doc(), "us-east-1", "s3", "20130524T000000Z", &req);
        assert_eq!(signature(&auth), "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
    }

    #[test]
    fn the_s3_list_objects_example_sorts_its_query() {
        let headers = pairs(&[
            ("host", "examplebucket.s3.amazonaws.com"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", "20130524T000000Z"),
        ]);
        let query = pairs(&[("prefix", "J"), ("max-keys", "2")]);
        let req =
            SignedRequest { method: "GET", path: "/", query: &query, headers: &headers, payload_sha256: EMPTY_SHA256 };
        let auth = authorization(&s3_doc(), "us-east-1", "s3", "20130524T000000Z", &req);
        assert_eq!(signature(&auth), "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
    }

    #[test]
    fn encoding_keeps_only_unreserved_characters_and_optionally_slashes() {
        assert_eq!(uri_encode("a-b_c.d~e", false), "a-b_c.d~e");
        assert_eq!(uri_encode("a b/c+d=é", false), "a%20b%2Fc%2Bd%3D%C3%A9");
        assert_eq!(encode_path("/dxf/acme/game/0001/x[1]"), "/dxf/acme/game/0001/x%5B1%5D");
        assert_eq!(canonical_query(&pairs(&[("uploads", "")])), "uploads=");
    }
}
