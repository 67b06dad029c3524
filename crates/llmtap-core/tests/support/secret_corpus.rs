//! A corpus of secrets shaped like the real ones, shared by the redactor's unit tests and the
//! end-to-end leak test of the `llmtap` binary (`crates/llmtap-cli/tests/redaction.rs`).
//!
//! Every secret is generated at run time from a fixed seed (prefix + random body), so this file
//! holds no literal token that a secret scanner would flag, and none is live.

#![allow(dead_code, unreachable_pub)]

/// One planted secret: the text to place (`text`, which may carry context such as
/// `password=`), the part that must never be recorded (`secret`), and the `kind` expected in
/// `[REDACTED:<kind>]`.
#[derive(Debug, Clone)]
pub struct Planted {
    pub kind: &'static str,
    pub text: String,
    pub secret: String,
    /// Still redacted when glued to a preceding word (`prefixsk-proj-…`).
    pub glued_ok: bool,
}

/// Deterministic bodies: a small xorshift generator, one per corpus build.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn from(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n)
            .map(|_| alphabet[(self.next() % alphabet.len() as u64) as usize] as char)
            .collect()
    }
    fn alnum(&mut self, n: usize) -> String {
        self.from(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
            n,
        )
    }
    /// Base64url-ish: letters, digits, `_` and `-` (never first or last, so the secret's
    /// boundaries are what the test means them to be).
    fn mixed(&mut self, n: usize) -> String {
        let mut s = self.alnum(1);
        s.push_str(&self.from(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-",
            n.saturating_sub(2),
        ));
        s.push_str(&self.alnum(1));
        s
    }
    fn upper(&mut self, n: usize) -> String {
        self.from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0234567", n)
    }
    fn hex(&mut self, n: usize) -> String {
        self.from(b"0123456789abcdef", n)
    }
    fn digits(&mut self, n: usize) -> String {
        self.from(b"0123456789", n)
    }
    fn b64(&mut self, n: usize) -> String {
        self.from(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
            n,
        )
    }
}

fn token(kind: &'static str, secret: String, glued_ok: bool) -> Planted {
    Planted {
        kind,
        text: secret.clone(),
        secret,
        glued_ok,
    }
}

fn keyed(kind: &'static str, context: &str, secret: String, tail: &str) -> Planted {
    Planted {
        kind,
        text: format!("{context}{secret}{tail}"),
        secret,
        glued_ok: false,
    }
}

/// The corpus: more than 30 formats across cloud keys, VCS tokens, payment keys, OAuth tokens,
/// model-provider keys, JWTs, URL and header credentials, PEM private keys and emails.
pub fn corpus() -> Vec<Planted> {
    let mut g = Gen(0x5eed_1e55_c0ff_ee11);
    let pem_body = (0..12).map(|_| g.b64(64)).collect::<Vec<_>>().join("\n");
    let pem_tail = g.b64(40);
    let ssh_body = (0..6).map(|_| g.b64(70)).collect::<Vec<_>>().join("\n");
    let pem = format!(
        "-----BEGIN RSA PRIVATE KEY-----\n{pem_body}\n{pem_tail}==\n-----END RSA PRIVATE KEY-----"
    );
    let cut_pem_body = (0..4).map(|_| g.b64(64)).collect::<Vec<_>>().join("\n");
    let mut c = vec![
        token(
            "openai_key",
            format!("sk-{}T3BlbkFJ{}", g.alnum(20), g.alnum(20)),
            true,
        ),
        token("openai_key", format!("sk-{}-{}", "proj", g.mixed(74)), true),
        token(
            "openai_key",
            format!("sk-{}-{}", "svcacct", g.mixed(60)),
            true,
        ),
        token(
            "openai_key",
            format!("sk-{}-{}", "admin", g.mixed(60)),
            true,
        ),
        token("openai_key", format!("sk-{}-{}", "or-v1", g.hex(64)), true),
        token("openai_key", format!("sk-{}", g.mixed(48)), false),
        token(
            "anthropic_key",
            format!("sk-ant-{}-{}AA", "api03", g.mixed(93)),
            true,
        ),
        token(
            "anthropic_key",
            format!("sk-ant-{}-{}AA", "admin01", g.mixed(93)),
            true,
        ),
        token("google_api_key", format!("AIza{}", g.mixed(35)), true),
        token("google_oauth", format!("ya29.{}", g.mixed(120)), true),
        token("google_oauth", format!("GOCSPX-{}", g.mixed(28)), true),
        token("aws_access_key_id", format!("AKIA{}", g.upper(16)), true),
        token("aws_access_key_id", format!("ASIA{}", g.upper(16)), true),
        keyed(
            "aws_secret_access_key",
            "aws_secret_access_key = ",
            g.b64(40),
            "",
        ),
        keyed(
            "aws_secret_access_key",
            "AWS_SECRET_ACCESS_KEY=",
            g.b64(40),
            "",
        ),
        token("github_token", format!("ghp_{}", g.alnum(36)), true),
        token("github_token", format!("gho_{}", g.alnum(36)), true),
        token(
            "github_token",
            format!("github_pat_{}_{}", g.alnum(22), g.alnum(59)),
            true,
        ),
        token("gitlab_token", format!("glpat-{}", g.mixed(20)), true),
        token(
            "slack_token",
            format!("xoxb-{}-{}-{}", g.digits(12), g.digits(13), g.alnum(24)),
            true,
        ),
        token(
            "slack_token",
            format!("xoxp-{}-{}-{}", g.digits(12), g.digits(12), g.hex(32)),
            true,
        ),
        keyed(
            "slack_token",
            "https://",
            format!(
                "hooks.slack.com/services/T{}/B{}/{}",
                g.upper(8),
                g.upper(10),
                g.alnum(24)
            ),
            "",
        ),
        token("stripe_key", format!("sk_{}_{}", "live", g.alnum(24)), true),
        token("stripe_key", format!("rk_{}_{}", "live", g.alnum(24)), true),
        token("stripe_key", format!("whsec_{}", g.alnum(32)), true),
        token(
            "sendgrid_key",
            format!("SG.{}.{}", g.mixed(22), g.mixed(43)),
            true,
        ),
        token("npm_token", format!("npm_{}", g.alnum(36)), true),
        token(
            "pypi_token",
            format!("pypi-AgEIcHlwaS5vcmc{}", g.mixed(70)),
            true,
        ),
        token("twilio_key", format!("SK{}", g.hex(32)), false),
        token("mailgun_key", format!("key-{}", g.hex(32)), false),
        token("shopify_token", format!("shpat_{}", g.hex(32)), true),
        token("digitalocean_token", format!("dop_v1_{}", g.hex(64)), true),
        token("vault_token", format!("hvs.{}", g.mixed(90)), true),
        token("databricks_token", format!("dapi{}", g.hex(32)), false),
        token(
            "telegram_bot_token",
            format!("{}:AA{}", g.digits(10), g.mixed(33)),
            false,
        ),
        keyed(
            "discord_webhook",
            "https://",
            format!("discord.com/api/webhooks/{}/{}", g.digits(18), g.mixed(68)),
            "",
        ),
        token("groq_key", format!("gsk_{}", g.alnum(52)), false),
        token("xai_key", format!("xai-{}", g.alnum(80)), false),
        token("huggingface_token", format!("hf_{}", g.alnum(34)), false),
        token("perplexity_key", format!("pplx-{}", g.alnum(48)), false),
        token("replicate_token", format!("r8_{}", g.alnum(37)), false),
        token("linear_key", format!("lin_api_{}", g.alnum(40)), false),
        token(
            "jwt",
            format!("eyJ{}.eyJ{}.{}", g.mixed(33), g.mixed(90), g.mixed(43)),
            true,
        ),
        keyed("bearer", "Bearer ", g.mixed(40), ""),
        keyed("bearer", "Authorization: bearer ", g.mixed(64), ""),
        keyed(
            "basic_auth",
            "Authorization: Basic ",
            format!("{}==", g.b64(30)),
            "",
        ),
        keyed(
            "basic_auth",
            "curl -H 'authorization: Basic ",
            g.b64(28),
            "'",
        ),
        keyed(
            "url_credentials",
            "postgres://admin:",
            g.alnum(18),
            "@10.0.0.5:5432/app",
        ),
        keyed(
            "url_credentials",
            "redis://:",
            g.alnum(24),
            "@localhost:6379/0",
        ),
        keyed(
            "url_credentials",
            "https://deploy:",
            format!("{}@{}", g.alnum(10), g.alnum(6)),
            "@[::1]:8443/hook",
        ),
        keyed("credential", "password=", g.alnum(16), ""),
        keyed("credential", "\"api_key\": \"", g.mixed(32), "\""),
        keyed(
            "credential",
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=",
            format!("{}==", g.b64(86)),
            ";EndpointSuffix=core.windows.net",
        ),
        keyed("credential", "api-key: ", g.hex(32), ""),
        keyed("credential", "client_secret=", g.mixed(40), ""),
        Planted {
            kind: "private_key",
            text: pem.clone(),
            secret: pem_tail,
            glued_ok: true,
        },
        Planted {
            kind: "private_key",
            text: format!("-----BEGIN PRIVATE KEY-----\n{cut_pem_body}"),
            secret: cut_pem_body.lines().last().unwrap_or_default().to_owned(),
            glued_ok: true,
        },
        Planted {
            kind: "private_key",
            text: format!(
                "-----BEGIN OPENSSH PRIVATE KEY-----\n{ssh_body}\n-----END OPENSSH PRIVATE KEY-----"
            ),
            secret: ssh_body.lines().nth(2).unwrap_or_default().to_owned(),
            glued_ok: true,
        },
        token(
            "email",
            format!("{}.{}@example-corp.co.uk", g.alnum(6), g.alnum(8)),
            true,
        ),
    ];
    c.shrink_to_fit();
    c
}
