//! `rosey reload --url URL`: the running bot's dashboard address given on the command line,
//! instead of the one the config (and this shell's `ROSEY_*` variables) would give. Only the
//! dashboard's root is accepted, as `http://HOST[:PORT][/]`, optionally with credentials
//! (`http://USER:PASSWORD@HOST:PORT/`, percent-encoded) that replace `dashboard.auth`. A
//! password is never shown: not by `Debug`, not in an error, not in the address messages name.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;
use ureq::http::Uri;

use crate::config::BasicAuth;

/// A bot's dashboard address from `--url`.
#[derive(Debug, Clone)]
pub struct BotUrl {
    /// `http://HOST:PORT/` without the credentials: what is asked and what messages show.
    base: String,
    /// The URL's own credentials; `Debug` redacts the password.
    auth: Option<BasicAuth>,
}

/// Why a `--url` value is not a dashboard address; the value is shown without its password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value {shown:?} for --url: {problem}; expected http://HOST:PORT/, e.g. http://127.0.0.1:8080/")]
pub struct BadUrl {
    shown: String,
    problem: UrlProblem,
}

/// What is wrong with a `--url` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlProblem {
    #[error("it is not a URL ({0})")]
    Malformed(String),
    #[error("it has no http:// or https:// in front")]
    NoScheme,
    #[error("the scheme is {0}, and rosey reload speaks http or https")]
    Scheme(String),
    #[error("it names no host")]
    NoHost,
    #[error("the port {0:?} is not a number from 1 to 65535")]
    Port(String),
    #[error("it has a path, query or fragment ({0}); give the dashboard's root")]
    NotTheRoot(String),
    #[error("its credentials are not USER:PASSWORD with a non-empty user (percent-encode any @ : / ? # in them)")]
    Credentials,
}

impl BotUrl {
    /// Read `text`, a value given to `--url`.
    pub fn parse(text: &str) -> Result<BotUrl, BadUrl> {
        let bad = |problem| BadUrl { shown: redacted(text), problem };
        let uri: Uri =
            text.parse().map_err(|e: ureq::http::uri::InvalidUri| bad(UrlProblem::Malformed(e.to_string())))?;
        let scheme = match uri.scheme_str() {
            Some(scheme) if scheme.eq_ignore_ascii_case("http") => "http",
            Some(scheme) if scheme.eq_ignore_ascii_case("https") => "https",
            Some(scheme) => return Err(bad(UrlProblem::Scheme(scheme.to_owned()))),
            None => return Err(bad(UrlProblem::NoScheme)),
        };
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
        // An `@` beyond the authority: a password with a character that ends it (`/ ? #`).
        // Stopping here also keeps every part shown below clear of the password.
        if text.contains('@') && !authority.contains('@') {
            return Err(bad(UrlProblem::Credentials));
        }
        let (userinfo, host_port) = match authority.rsplit_once('@') {
            Some((userinfo, host_port)) => (Some(userinfo), host_port),
            None => (None, authority),
        };
        let host = uri.host().unwrap_or_default();
        if host.is_empty() {
            return Err(bad(UrlProblem::NoHost));
        }
        if let Some(port) = host_port.strip_prefix(host).and_then(|rest| rest.strip_prefix(':'))
            && !port.parse::<u16>().is_ok_and(|p| p > 0)
        {
            return Err(bad(UrlProblem::Port(port.to_owned())));
        }
        let rest = uri.path_and_query().map(|p| p.as_str()).unwrap_or_default();
        let fragment = text.find('#').map_or("", |at| &text[at..]);
        if !matches!(rest, "" | "/") || !fragment.is_empty() {
            return Err(bad(UrlProblem::NotTheRoot(format!("{rest}{fragment}"))));
        }
        let auth = userinfo.map(credentials).transpose().map_err(|()| bad(UrlProblem::Credentials))?;
        Ok(BotUrl { base: format!("{scheme}://{host_port}/"), auth })
    }

    /// `http://HOST:PORT/` (or `https://`), without credentials.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The credentials the URL carries, if any.
    pub fn auth(&self) -> Option<&BasicAuth> {
        self.auth.as_ref()
    }
}

/// `USER:PASSWORD`, percent-decoded.
fn credentials(userinfo: &str) -> Result<BasicAuth, ()> {
    let (user, password) = userinfo.split_once(':').ok_or(())?;
    let username = percent_decoded(user).ok_or(())?;
    let password = percent_decoded(password).ok_or(())?;
    // Basic auth joins them with a colon: a user name cannot hold one.
    if username.is_empty() || username.contains(':') {
        return Err(());
    }
    Ok(BasicAuth { username, password })
}

/// `text` with each `%XX` replaced by its byte; None if an escape is broken or the result is
/// not UTF-8.
fn percent_decoded(text: &str) -> Option<String> {
    // The crate passes a broken escape through as written; in a URL's credentials it is a
    // mistake, and sending it on would only fail later as "wrong credentials".
    let broken = text
        .split('%')
        .skip(1)
        .any(|after| !after.as_bytes().get(..2).is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit)));
    if broken {
        return None;
    }
    percent_decode_str(text).decode_utf8().ok().map(Cow::into_owned)
}

/// `text` as an error may show it: whatever may be a password replaced by `***`. Everything
/// from the first `:` to the last `@` goes, wherever they are: a password the user forgot to
/// percent-encode may hold `/`, `?` or `#` and so end the authority early.
fn redacted(text: &str) -> String {
    let (scheme, rest) = text.split_once("://").map_or(("", text), |(scheme, rest)| (scheme, rest));
    let Some(at) = rest.rfind('@') else { return text.to_owned() };
    let user = rest[..at].split(':').next().unwrap_or_default();
    let separator = if text.contains("://") { "://" } else { "" };
    format!("{scheme}{separator}{user}:***{}", &rest[at..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(text: &str) -> UrlProblem {
        BotUrl::parse(text).expect_err(text).problem
    }

    #[test]
    fn the_dashboards_root_is_accepted() {
        for (text, base) in [
            ("http://127.0.0.1:8080/", "http://127.0.0.1:8080/"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080/"),
            ("HTTP://bot.example/", "http://bot.example/"),
            ("http://[::1]:9090/", "http://[::1]:9090/"),
        ] {
            let url = BotUrl::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!((url.base(), url.auth().is_none()), (base, true), "{text}");
        }
    }

    #[test]
    fn credentials_in_the_url_are_decoded_and_never_shown() {
        let url = BotUrl::parse("http://admin:p%40ss%3Aw0rd@127.0.0.1:8080/").expect("a URL with credentials");
        let auth = url.auth().expect("credentials");
        assert_eq!((auth.username.as_str(), auth.password.as_str()), ("admin", "p@ss:w0rd"));
        assert_eq!(url.base(), "http://127.0.0.1:8080/");
        assert!(!format!("{url:?}").contains("p@ss"), "{url:?}");

        assert_eq!(problem("http://admin@127.0.0.1/"), UrlProblem::Credentials, "a password is needed");
        assert_eq!(problem("http://:pw@127.0.0.1/"), UrlProblem::Credentials);
        assert_eq!(problem("http://admin:bad%zz@127.0.0.1/"), UrlProblem::Credentials);
        for (text, shown, why) in [
            (
                "http://admin:hunter2@bot.example/#x",
                "http://admin:***@bot.example/#x",
                UrlProblem::NotTheRoot("/#x".into()),
            ),
            ("http://admin:hun#ter/2@bot.example/", "http://admin:***@bot.example/", UrlProblem::Credentials),
            ("admin:hunter2@bot.example:80", "admin:***@bot.example:80", UrlProblem::NoScheme),
        ] {
            let error = BotUrl::parse(text).expect_err(text);
            assert_eq!(error.problem, why, "{text}");
            let error = error.to_string();
            assert!(error.starts_with(&format!("invalid value {shown:?} for --url: ")), "{error}");
            assert!(!error.contains("hun"), "{error}");
        }
    }

    #[test]
    fn anything_but_a_dashboards_root_is_refused_saying_why() {
        assert_eq!(problem("127.0.0.1:8080"), UrlProblem::NoScheme);
        assert_eq!(
            BotUrl::parse("HTTPS://bot.example/").map(|u| u.base().to_owned()),
            Ok("https://bot.example/".into())
        );
        assert_eq!(problem("ftp://bot.example/"), UrlProblem::Scheme("ftp".into()));
        assert_eq!(problem("http://127.0.0.1:8080/api/reload"), UrlProblem::NotTheRoot("/api/reload".into()));
        assert_eq!(problem("http://127.0.0.1:8080/?x=1"), UrlProblem::NotTheRoot("/?x=1".into()));
        assert_eq!(problem("http://127.0.0.1:8080/#top"), UrlProblem::NotTheRoot("/#top".into()));
        assert_eq!(problem("http://127.0.0.1:99999/"), UrlProblem::Port("99999".into()));
        assert_eq!(problem("http://127.0.0.1:0/"), UrlProblem::Port("0".into()));
        assert!(matches!(problem("http://bad host/"), UrlProblem::Malformed(_)));
        assert!(matches!(problem(""), UrlProblem::Malformed(_)));
        let error = BotUrl::parse("localhost:8080/x").expect_err("no scheme").to_string();
        assert!(error.starts_with("invalid value \"localhost:8080/x\" for --url: "), "{error}");
        assert!(error.ends_with("expected http://HOST:PORT/, e.g. http://127.0.0.1:8080/"), "{error}");
    }
}
