//! The jwt probe: decode a JSON Web Token the learner's service issued and
//! verify it with the instance's secret. It never fails to answer: a token that
//! is malformed, badly signed or expired is an answer with `valid: false` and
//! the reason, so that checks can say exactly what is wrong.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::Answer;

/// Tokens longer than this are not decoded.
pub const MAX_TOKEN: usize = 16 * 1024;

/// What to check.
pub struct JwtSpec<'a> {
    pub token: &'a str,
    /// The shared secret (HMAC algorithms).
    pub secret: &'a str,
    /// The algorithm the token must use, e.g. HS256.
    pub algorithm: Algorithm,
    /// Without an `exp` claim the token is invalid.
    pub require_exp: bool,
}

/// Decode and verify. The answer's value is
/// `{"valid": bool, "error": "..."|null, "header": {...}|null, "claims": {...}|null, "expires_in_seconds": n|null}`;
/// `claims` are read even when the signature is wrong (to show what came),
/// `valid` needs the right algorithm, a good signature and no `exp` in the past
/// (and an `exp` at all with `require_exp`).
pub fn check(spec: &JwtSpec<'_>) -> Answer {
    let started = std::time::Instant::now();
    let value = judge(spec);
    let shown = match (&value["valid"], &value["error"]) {
        (serde_json::Value::Bool(true), _) => format!("a valid token; claims {}", value["claims"]),
        (_, e) => format!("an invalid token ({}); header {}, claims {}", e.as_str().unwrap_or("?"), value["header"], value["claims"]),
    };
    Answer { value, shown, elapsed: started.elapsed() }
}

fn judge(spec: &JwtSpec<'_>) -> serde_json::Value {
    let invalid = |error: String, header: serde_json::Value, claims: serde_json::Value, exp_in: serde_json::Value| serde_json::json!({"valid": false, "error": error, "header": header, "claims": claims, "expires_in_seconds": exp_in});
    if spec.token.len() > MAX_TOKEN {
        return invalid(format!("the token is {} bytes long (at most {MAX_TOKEN} are read)", spec.token.len()), serde_json::Value::Null, serde_json::Value::Null, serde_json::Value::Null);
    }
    if spec.token.is_empty() {
        return invalid("the token is empty".into(), serde_json::Value::Null, serde_json::Value::Null, serde_json::Value::Null);
    }
    let header = match jsonwebtoken::decode_header(spec.token) {
        Ok(h) => serde_json::to_value(&h).unwrap_or(serde_json::Value::Null),
        Err(e) => return invalid(format!("not a JWT: {e}"), serde_json::Value::Null, serde_json::Value::Null, serde_json::Value::Null),
    };
    // The claims as sent, without checking anything.
    let mut peek = Validation::new(Algorithm::HS256);
    peek.insecure_disable_signature_validation();
    peek.validate_exp = false;
    peek.required_spec_claims.clear();
    peek.algorithms = vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512, Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];
    let claims = match jsonwebtoken::decode::<serde_json::Value>(spec.token, &DecodingKey::from_secret(b""), &peek) {
        Ok(d) => d.claims,
        Err(e) => return invalid(format!("the claims do not decode: {e}"), header, serde_json::Value::Null, serde_json::Value::Null),
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let exp_in = claims.get("exp").and_then(|e| e.as_i64()).map(|e| serde_json::json!(e - now)).unwrap_or(serde_json::Value::Null);
    let mut v = Validation::new(spec.algorithm);
    v.leeway = 0;
    v.validate_aud = false;
    if spec.require_exp {
        v.set_required_spec_claims(&["exp"]);
    } else {
        v.required_spec_claims.clear();
        v.validate_exp = claims.get("exp").is_some();
    }
    match jsonwebtoken::decode::<serde_json::Value>(spec.token, &DecodingKey::from_secret(spec.secret.as_bytes()), &v) {
        Ok(_) => serde_json::json!({"valid": true, "error": null, "header": header, "claims": claims, "expires_in_seconds": exp_in}),
        Err(e) => {
            use jsonwebtoken::errors::ErrorKind as K;
            let why = match e.kind() {
                K::InvalidSignature => "the signature does not match the instance's JWT_SECRET".to_string(),
                K::MissingRequiredClaim(c) => format!("the token has no `{c}` claim"),
                K::ExpiredSignature => "the token has expired".to_string(),
                K::InvalidAlgorithm => format!("the token is signed with {}, expected {:?}", header["alg"].as_str().unwrap_or("?"), spec.algorithm),
                _ => e.to_string(),
            };
            invalid(why, header, claims, exp_in)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};

    fn token(claims: serde_json::Value, secret: &str) -> String {
        encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
    }

    fn now() -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
    }

    fn spec<'a>(t: &'a str) -> JwtSpec<'a> {
        JwtSpec { token: t, secret: "s3cret-s3cret-s3cret", algorithm: Algorithm::HS256, require_exp: true }
    }

    #[test]
    fn a_good_token_is_valid_with_its_claims() {
        let t = token(serde_json::json!({"sub": "7", "iat": now(), "exp": now() + 900}), "s3cret-s3cret-s3cret");
        let a = check(&spec(&t));
        assert_eq!(a.value["valid"], true, "{}", a.value);
        assert_eq!(a.value["claims"]["sub"], "7");
        let left = a.value["expires_in_seconds"].as_i64().unwrap();
        assert!((895..=900).contains(&left), "{left}");
        assert_eq!(a.value["header"]["alg"], "HS256");
    }

    #[test]
    fn each_fault_is_named() {
        let other = token(serde_json::json!({"sub": "7", "exp": now() + 900}), "another-secret");
        assert_eq!(check(&spec(&other)).value["error"], "the signature does not match the instance's JWT_SECRET");
        let no_exp = token(serde_json::json!({"sub": "7"}), "s3cret-s3cret-s3cret");
        let a = check(&spec(&no_exp));
        assert_eq!(a.value["error"], "the token has no `exp` claim");
        assert_eq!(a.value["claims"]["sub"], "7");
        assert!(a.value["expires_in_seconds"].is_null());
        // Without require_exp, a token without exp is valid (a check then tests /claims/exp itself).
        assert_eq!(check(&JwtSpec { require_exp: false, ..spec(&no_exp) }).value["valid"], true);
        let old = token(serde_json::json!({"sub": "7", "exp": now() - 10}), "s3cret-s3cret-s3cret");
        assert_eq!(check(&spec(&old)).value["error"], "the token has expired");
        let bad = check(&spec("not.a.jwt"));
        assert_eq!(bad.value["valid"], false);
        assert!(bad.value["error"].as_str().unwrap().starts_with("not a JWT"), "{}", bad.value);
        let huge = "a".repeat(MAX_TOKEN + 1);
        assert!(check(&spec(&huge)).value["error"].as_str().unwrap().contains("bytes long"));
        assert_eq!(check(&spec("")).value["error"], "the token is empty");
    }
}
