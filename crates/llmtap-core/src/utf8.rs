//! Cutting UTF-8 text to a byte budget without splitting a character: the one place llmtap
//! decides where a cut string ends.

/// The longest prefix of `s` that is at most `max_bytes` long and ends at a char boundary.
pub fn prefix(s: &str, max_bytes: usize) -> &str {
    s.get(..s.floor_char_boundary(max_bytes))
        .unwrap_or_default()
}

/// Cuts `s` to [`prefix`]`(s, max_bytes)` in place.
pub fn truncate(s: &mut String, max_bytes: usize) {
    let end = s.floor_char_boundary(max_bytes);
    s.truncate(end);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_never_split_a_character() {
        let s = "aé€😀";
        let cuts: Vec<&str> = (0..=s.len() + 1).map(|n| prefix(s, n)).collect();
        assert_eq!(
            cuts,
            [
                "",
                "a",
                "a",
                "aé",
                "aé",
                "aé",
                "aé€",
                "aé€",
                "aé€",
                "aé€",
                "aé€😀",
                "aé€😀"
            ]
        );
        for n in 0..=s.len() + 1 {
            let mut owned = s.to_owned();
            truncate(&mut owned, n);
            assert_eq!(owned, prefix(s, n));
        }
    }
}
