//! The port a URL means when it names none.

/// 443 for `https`, 80 for `http`, else none (any case, as URL schemes are).
pub fn for_scheme(scheme: &str) -> Option<u16> {
    if scheme.eq_ignore_ascii_case("https") {
        Some(443)
    } else if scheme.eq_ignore_ascii_case("http") {
        Some(80)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_scheme() {
        assert_eq!(for_scheme("https"), Some(443));
        assert_eq!(for_scheme("http"), Some(80));
        assert_eq!(for_scheme("grpc"), None);
    }
}
