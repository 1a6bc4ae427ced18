//! Random identifiers from the operating system's generator: proposal ids, audit ids and stream
//! claim tokens. The core takes them as arguments (it has no randomness of its own); this is where the functions draw them.

/// The operating system could not give randomness: no id can be drawn safely, so nothing that
/// needs one (a proposal, an unlock) is done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no randomness for {what} from the operating system: {reason}")]
pub struct NoRandomness {
    pub what: &'static str,
    pub reason: String,
}

/// `N` random bytes for `what` (named in the error).
pub fn random_bytes<const N: usize>(what: &'static str) -> Result<[u8; N], NoRandomness> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| NoRandomness {
        what,
        reason: e.to_string(),
    })?;
    Ok(bytes)
}

/// A new audit record id: 16 random bytes as 32 lowercase hex characters.
pub fn audit_id() -> Result<String, NoRandomness> {
    random_bytes::<16>("an audit id").map(hex::encode)
}

/// A new stream claim token for one lock-metrics invocation: 16 random bytes as 32 lowercase hex
/// characters (see `Ledger::claim_records`).
pub fn claim_token() -> Result<String, NoRandomness> {
    random_bytes::<16>("a stream claim token").map(hex::encode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_ids_are_32_hex_characters_and_differ() {
        let (a, b) = (audit_id().unwrap(), audit_id().unwrap());
        assert_eq!(a.len(), 32);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }
}
