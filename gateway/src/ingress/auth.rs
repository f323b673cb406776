//! HS256 tokens (contract §1): minted by `gavel token`, verified on every WebSocket upgrade
//! and HTTP request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use gavel_protocol::{Claims, Role, UserId};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

/// Why a token was refused. The wire only ever says 401; the kind is for logs and tests.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("token expired")]
    Expired,
    #[error("bad token signature")]
    BadSignature,
    #[error("malformed token: {0}")]
    Malformed(String),
}

/// The signing and verifying keys derived from the server's secret.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    node_validation: Validation,
    /// Tokens that verified, with their claims: a backend's service token comes with every
    /// HTTP request, and checking its signature again each time cost ~33 k instructions (a
    /// sixth of a posted task's whole path, docs/benchmarks.md). Keyed by the whole token, so
    /// only the exact bytes that verified are ever answered from here; `exp` is still checked
    /// on every use. Only valid tokens get in, and at most [`VERIFIED_TOKENS`] of them.
    verified: Mutex<HashMap<Box<str>, Claims>>,
}

/// Verified tokens remembered at most; when full, the memory starts over.
const VERIFIED_TOKENS: usize = 1024;

/// The audience of the tokens cluster nodes present to each other (a client's token has
/// none, and a node's token has no `role`: neither passes for the other).
pub const NODE_AUDIENCE: &str = "gavel-cluster";

/// A cluster node's claims: its id, for [`NODE_AUDIENCE`].
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct NodeClaims {
    sub: String,
    aud: String,
    exp: u64,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.write_str("JwtKeys { .. }")
    }
}

impl JwtKeys {
    /// Keys for `secret` (any bytes; at least 32 recommended).
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // `exp` is required, and checked by `verify_at` itself: on every use, remembered or
        // not, with no grace period (the contract refuses an expired token).
        validation.validate_exp = false;
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let mut node_validation = Validation::new(Algorithm::HS256);
        node_validation.leeway = 0;
        node_validation.set_required_spec_claims(&["exp", "sub", "aud"]);
        node_validation.set_audience(&[NODE_AUDIENCE]);
        JwtKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            node_validation,
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// A token for cluster node `node_id` (how a follower authenticates to the leader).
    pub fn mint_node(&self, node_id: &str, ttl: Duration, now_secs: u64) -> String {
        let claims = NodeClaims {
            sub: node_id.to_owned(),
            aud: NODE_AUDIENCE.to_owned(),
            exp: now_secs.saturating_add(ttl.as_secs()),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing of serializable claims cannot fail")
    }

    /// The node id of a valid node token.
    pub fn verify_node(&self, token: &str) -> Result<String, AuthError> {
        jsonwebtoken::decode::<NodeClaims>(token, &self.decoding, &self.node_validation)
            .map(|data| data.claims.sub)
            .map_err(|e| AuthError::Malformed(e.to_string()))
    }

    /// A token for `sub` in `role`, valid for `ttl` from `now_secs` (seconds since the epoch).
    pub fn mint(&self, sub: &UserId, role: Role, ttl: Duration, now_secs: u64) -> String {
        let claims = Claims {
            sub: sub.clone(),
            role,
            exp: now_secs.saturating_add(ttl.as_secs()),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing of serializable claims cannot fail")
    }

    /// The claims of a valid token: signed with this secret by HS256, not expired, with a
    /// well-formed `sub` and a known `role`.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        self.verify_at(token, jsonwebtoken::get_current_timestamp())
    }

    /// [`JwtKeys::verify`] at `now` (seconds since the epoch).
    fn verify_at(&self, token: &str, now: u64) -> Result<Claims, AuthError> {
        let remembered = self
            .verified
            .lock()
            .expect("verified tokens lock")
            .get(token)
            .cloned();
        let claims = match remembered {
            Some(claims) => claims,
            None => {
                let claims = self.check_signature(token)?;
                if claims.exp <= now {
                    return Err(AuthError::Expired);
                }
                let mut verified = self.verified.lock().expect("verified tokens lock");
                if verified.len() >= VERIFIED_TOKENS {
                    verified.clear();
                }
                verified.insert(token.into(), claims.clone());
                claims
            }
        };
        // RFC 7519: not accepted on or after `exp` (and a session closes with 4001 then).
        if claims.exp <= now {
            return Err(AuthError::Expired);
        }
        Ok(claims)
    }

    /// The claims of a token signed with this secret, expired or not.
    fn check_signature(&self, token: &str) -> Result<Claims, AuthError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => AuthError::BadSignature,
                _ => AuthError::Malformed(e.to_string()),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{SystemTime, UNIX_EPOCH};

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn alice() -> UserId {
        UserId::new("alice").unwrap()
    }

    #[test]
    fn a_minted_token_verifies_with_its_claims() {
        let keys = JwtKeys::new(b"0123456789abcdef0123456789abcdef");
        let token = keys.mint(&alice(), Role::Seeker, Duration::from_secs(3600), now());
        let claims = keys.verify(&token).unwrap();
        assert_eq!(claims.sub, alice());
        assert_eq!(claims.role, Role::Seeker);
    }

    #[test]
    fn an_expired_token_is_refused() {
        let keys = JwtKeys::new(b"secret");
        let token = keys.mint(&alice(), Role::Coach, Duration::from_secs(60), now() - 120);
        assert_eq!(keys.verify(&token), Err(AuthError::Expired));
    }

    #[test]
    fn a_token_is_expired_from_its_exp_second_on() {
        let keys = JwtKeys::new(b"secret");
        let token = keys.mint(&alice(), Role::Coach, Duration::from_secs(0), now());
        assert_eq!(keys.verify(&token), Err(AuthError::Expired));
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let token =
            JwtKeys::new(b"one").mint(&alice(), Role::Admin, Duration::from_secs(60), now());
        assert_eq!(
            JwtKeys::new(b"two").verify(&token),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn a_tampered_payload_is_refused() {
        let keys = JwtKeys::new(b"secret");
        let token = keys.mint(&alice(), Role::Seeker, Duration::from_secs(60), now());
        let forged =
            JwtKeys::new(b"secret").mint(&alice(), Role::Admin, Duration::from_secs(60), now());
        // Graft the admin payload onto the seeker token's signature.
        let parts: Vec<&str> = token.split('.').collect();
        let forged_payload = forged.split('.').nth(1).unwrap();
        let tampered = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert_eq!(keys.verify(&tampered), Err(AuthError::BadSignature));
    }

    #[test]
    fn garbage_and_bad_claims_are_malformed() {
        let keys = JwtKeys::new(b"secret");
        assert!(matches!(
            keys.verify("not-a-token"),
            Err(AuthError::Malformed(_))
        ));
        // A validly signed token whose role is not one of the three.
        let claims = serde_json::json!({"sub": "alice", "role": "root", "exp": now() + 60});
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"secret"),
        )
        .unwrap();
        assert!(matches!(keys.verify(&token), Err(AuthError::Malformed(_))));
        // A `sub` outside the id alphabet.
        let claims = serde_json::json!({"sub": "a b", "role": "coach", "exp": now() + 60});
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"secret"),
        )
        .unwrap();
        assert!(matches!(keys.verify(&token), Err(AuthError::Malformed(_))));
    }

    #[test]
    fn a_remembered_token_is_still_refused_from_its_exp_on() {
        let keys = JwtKeys::new(b"secret");
        let token = keys.mint(&alice(), Role::Seeker, Duration::from_secs(60), 1_000);
        assert_eq!(keys.verify_at(&token, 1_000).unwrap().exp, 1_060);
        assert_eq!(keys.verify_at(&token, 1_059).unwrap().sub, alice());
        assert_eq!(keys.verify_at(&token, 1_060), Err(AuthError::Expired));
    }

    #[test]
    fn only_the_exact_token_that_verified_is_remembered() {
        let keys = JwtKeys::new(b"secret");
        let token = keys.mint(&alice(), Role::Seeker, Duration::from_secs(60), now());
        keys.verify(&token).unwrap();
        // The same claims under a changed signature: checked again, and refused.
        let mut altered = token.clone();
        let last = altered.pop().unwrap();
        altered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(keys.verify(&altered).is_err());
        // An expired token with a good signature is not remembered.
        let old = keys.mint(&alice(), Role::Coach, Duration::from_secs(60), now() - 120);
        assert_eq!(keys.verify(&old), Err(AuthError::Expired));
        assert!(!keys.verified.lock().unwrap().contains_key(old.as_str()));
    }

    #[test]
    fn the_memory_of_verified_tokens_is_bounded() {
        let keys = JwtKeys::new(b"secret");
        for i in 0..VERIFIED_TOKENS + 10 {
            let sub = UserId::new(&format!("u{i}")).unwrap();
            let token = keys.mint(&sub, Role::Coach, Duration::from_secs(60), now());
            assert_eq!(keys.verify(&token).unwrap().sub, sub);
            assert!(keys.verified.lock().unwrap().len() <= VERIFIED_TOKENS);
        }
    }
}
