//! The `[[user]]` tables, and the one token check: what a token must be to be accepted in a
//! configuration, and the lookup the server authenticates with.

use super::check::{tables, Check};
use super::User;
use std::collections::HashMap;

/// Tokens shorter than this are refused: they are the only lock on the alarm controls.
pub const MIN_TOKEN_LEN: usize = 20;

/// Why `token` can never be a user's token, or `None` when it may be. Configuration validation
/// refuses such tokens, and [`find_user`] refuses them before comparing, so the two agree.
pub fn token_problem(token: &str) -> Option<String> {
    let chars = token.chars().count();
    if token.trim() != token {
        Some(
            "starts or ends with blanks: a token is pasted exactly as `vigil token` prints it"
                .into(),
        )
    } else if chars < MIN_TOKEN_LEN {
        Some(format!(
            "is {chars} characters; at least {MIN_TOKEN_LEN} are required: make one with `vigil token`"
        ))
    } else if token.chars().all(|ch| token.starts_with(ch)) {
        Some("repeats one character: make one with `vigil token`".into())
    } else {
        None
    }
}

/// Does `presented` open the lock `expected`? The one token comparison, for the users' tokens
/// ([`find_user`]) and the metrics token: a token [`token_problem`] refuses opens nothing, and
/// the comparison takes the same time wherever the two differ.
pub fn token_matches(expected: &str, presented: &str) -> bool {
    token_problem(presented).is_none()
        && constant_time_eq(expected.as_bytes(), presented.as_bytes())
}

/// The user whose token is `presented`: the only authentication, used by the display server
/// and by [`super::Config::user_by_token`]. Every user's token is compared in full
/// ([`token_matches`]), whatever matches, so that timing reveals neither a matching prefix nor
/// which user matched.
pub fn find_user<'a>(users: &'a [User], presented: &str) -> Option<&'a User> {
    let mut found = None;
    for user in users {
        if token_matches(&user.token, presented) && found.is_none() {
            found = Some(user);
        }
    }
    found
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A fresh random token for a `[[user]]`: 32 letters and digits (190 bits) from the operating
/// system's cryptographic random source.
pub fn new_token() -> Result<String, getrandom::Error> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    // Bytes at or above the largest multiple of 62 are dropped so that every character is
    // equally likely.
    let limit = (256 / ALPHABET.len() * ALPHABET.len()) as u8;
    let mut out = String::with_capacity(32);
    let mut buf = [0u8; 64];
    while out.len() < 32 {
        getrandom::fill(&mut buf)?;
        for b in buf.iter().filter(|b| **b < limit) {
            if out.len() < 32 {
                out.push(char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]));
            }
        }
    }
    Ok(out)
}

pub(super) fn users(doc: &toml::Table, c: &mut Check<'_>) -> Vec<User> {
    let mut out = Vec::new();
    // Who first used each token and each name, to name them in a refusal.
    let mut tokens: HashMap<String, String> = HashMap::new();
    let mut names: HashMap<String, String> = HashMap::new();
    for (n, t) in tables(doc, "user", c) {
        let name = t.get("name").and_then(|v| v.as_str()).unwrap_or("");
        let at = if name.is_empty() {
            format!("user #{n}.")
        } else {
            format!("user #{n} \"{name}\".")
        };
        c.enter("user", n, &at);
        c.unknown_keys(t, &["name", "role", "token"], &at);
        if name.trim().is_empty() {
            c.error(
                format!("{at}name"),
                "is required: it is recorded with every action",
            );
        } else if let Some(first) = names.get(&name.trim().to_lowercase()) {
            c.error(
                format!("{at}name"),
                format!("is the same as {first}'s: the record could not tell who acted"),
            );
        } else {
            names.insert(name.trim().to_lowercase(), format!("user #{n}"));
        }
        let role = c.required_choice(t, "role", &at, Some("viewer, nurse, provider, admin"));
        let token = c.string(t, "token", &at).unwrap_or_default();
        if let Some(problem) = token_problem(&token) {
            c.error(format!("{at}token"), problem);
        }
        // Never print the token itself: the error goes to logs and terminals.
        if let Some(first) = tokens.get(&token) {
            c.error(
                format!("{at}token"),
                format!("is the same as {first}'s: each person has their own"),
            );
        } else {
            tokens.insert(token.clone(), format!("user #{n}"));
        }
        if let Some(role) = role {
            out.push(User {
                name: name.to_string(),
                role,
                token,
            });
        }
    }
    c.entry = None;
    out
}

#[cfg(test)]
mod tests {
    use super::super::Role;
    use super::*;

    fn user(name: &str, token: &str) -> User {
        User {
            name: name.into(),
            role: Role::Nurse,
            token: token.into(),
        }
    }

    #[test]
    fn weak_tokens_are_refused_with_the_reason() {
        let problem = |t: &str| token_problem(t).unwrap_or_default();
        assert!(problem(" abcdefghijklmnopqrstu").contains("blanks"));
        assert!(problem("abcdefghijklmnopqrstu\t").contains("blanks"));
        assert!(problem("abcdefghijklmnopqrs").contains("is 19 characters; at least 20"));
        assert!(problem("").contains("is 0 characters"));
        assert!(problem("xxxxxxxxxxxxxxxxxxxxxxxx").contains("repeats one character"));
        assert_eq!(token_problem("abcdefghijklmnopqrst"), None);
    }

    #[test]
    fn the_lookup_finds_the_user_by_the_whole_token_only() {
        let users = [
            user("A", "token-of-a-0123456789"),
            user("B", "token-of-b-0123456789"),
        ];
        assert_eq!(
            find_user(&users, "token-of-b-0123456789").map(|u| u.name.as_str()),
            Some("B")
        );
        assert!(find_user(&users, "token-of-b-012345678").is_none());
        assert!(find_user(&users, "token-of-b-01234567890").is_none());
        assert!(find_user(&users, "").is_none());
    }

    #[test]
    fn the_lookup_refuses_a_token_the_configuration_would_refuse() {
        // Such a token can only be in `users` if validation was bypassed; it still opens nothing.
        let users = [user("A", "short"), user("B", " token-of-b-0123456789")];
        assert!(find_user(&users, "short").is_none());
        assert!(find_user(&users, " token-of-b-0123456789").is_none());
    }

    #[test]
    fn a_token_matches_only_itself_and_only_if_acceptable() {
        assert!(token_matches(
            "scrape-token-0123456789",
            "scrape-token-0123456789"
        ));
        assert!(!token_matches(
            "scrape-token-0123456789",
            "scrape-token-0123456780"
        ));
        assert!(!token_matches("scrape-token-0123456789", "scrape-token"));
        // A lock that validation was bypassed for still opens to nothing weak.
        assert!(!token_matches("short", "short"));
        assert!(!token_matches("", ""));
    }

    #[test]
    fn new_tokens_are_accepted_and_differ() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert_eq!(token_problem(&a), None);
        assert_ne!(a, b);
    }
}
