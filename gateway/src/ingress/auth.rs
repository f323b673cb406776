//! HS256 tokens (contract §1): minted by `gavel token`, verified on every WebSocket upgrade
//! and HTTP request.

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
}

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
        // The contract says an expired token is refused: no grace period.
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
        use jsonwebtoken::errors::ErrorKind;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::InvalidSignature => AuthError::BadSignature,
                _ => AuthError::Malformed(e.to_string()),
            })?;
        // jsonwebtoken still accepts a token during the second of its `exp`; RFC 7519 says it
        // must not be accepted on or after `exp` (and a session closes it with 4001 then).
        if claims.exp <= jsonwebtoken::get_current_timestamp() {
            return Err(AuthError::Expired);
        }
        Ok(claims)
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
}
