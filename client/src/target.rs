//! The local server's URL and how an event's sub-path and query join it.

use http::Uri;

const TARGET_SHAPE: &str = "--target must be the http:// or https:// URL of your local server, e.g. http://127.0.0.1:3000/hook";

/// Where events are forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `http` or `https`.
    pub scheme: String,
    /// `host[:port]` as written; also the `Host` header sent.
    pub authority: String,
    /// The path, `""` when none was given.
    pub path: String,
    /// The query without `?`, `""` when none.
    pub query: String,
    /// Host and port to probe at start.
    pub host: String,
    /// The port, explicit or the scheme's default.
    pub port: u16,
}

impl Target {
    /// Parses `http(s)://host[:port][/path][?query]`.
    pub fn parse(s: &str) -> Result<Target, String> {
        let s = s.trim();
        let uri: Uri = s
            .parse()
            .map_err(|_| format!("{TARGET_SHAPE}; got '{s}'"))?;
        let (scheme, default_port) = match uri.scheme_str() {
            Some("http") => ("http", 80),
            Some("https") => ("https", 443),
            _ => {
                return Err(format!(
                    "{TARGET_SHAPE}; got '{s}' (the scheme must be http or https)"
                ));
            }
        };
        let authority = uri
            .authority()
            .ok_or_else(|| format!("{TARGET_SHAPE}; got '{s}'"))?;
        // `Uri` reports "/" for "http://h"; keep what the user wrote.
        let path = match uri.path_and_query().map(|pq| pq.as_str()) {
            Some(pq) if pq.starts_with('/') => uri.path().to_owned(),
            _ => String::new(),
        };
        Ok(Target {
            scheme: scheme.to_owned(),
            authority: authority.as_str().to_owned(),
            path,
            query: uri.query().unwrap_or("").to_owned(),
            host: authority
                .host()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port: authority.port_u16().unwrap_or(default_port),
        })
    }

    /// The URL for an event: the target's path, then the event's raw path
    /// (never re-encoded), then the target's and the event's queries joined by `&`.
    pub fn url_for(&self, event_path: &str, event_query: &str) -> String {
        let mut url = format!("{}://{}", self.scheme, self.authority);
        if event_path.is_empty() {
            url.push_str(if self.path.is_empty() {
                "/"
            } else {
                &self.path
            });
        } else {
            url.push_str(self.path.trim_end_matches('/'));
            if !event_path.starts_with('/') {
                url.push('/');
            }
            url.push_str(event_path);
        }
        let queries: Vec<&str> = [self.query.as_str(), event_query]
            .into_iter()
            .filter(|q| !q.is_empty())
            .collect();
        if !queries.is_empty() {
            url.push('?');
            url.push_str(&queries.join("&"));
        }
        url
    }

    /// The target without path, for messages.
    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Target {
        Target::parse(s).unwrap()
    }

    #[test]
    fn joins_paths_and_queries() {
        let hook = t("http://127.0.0.1:3000/hook");
        assert_eq!(
            hook.url_for("/github", "a=1"),
            "http://127.0.0.1:3000/hook/github?a=1"
        );
        assert_eq!(hook.url_for("", ""), "http://127.0.0.1:3000/hook");
        assert_eq!(hook.url_for("/", ""), "http://127.0.0.1:3000/hook/");
        assert_eq!(
            t("http://127.0.0.1:3000/hook/").url_for("/github", ""),
            "http://127.0.0.1:3000/hook/github"
        );
        assert_eq!(
            t("http://127.0.0.1:3000").url_for("/github", ""),
            "http://127.0.0.1:3000/github"
        );
        assert_eq!(
            t("http://127.0.0.1:3000/").url_for("", ""),
            "http://127.0.0.1:3000/"
        );
        assert_eq!(
            t("http://localhost:3000").url_for("", "x=1"),
            "http://localhost:3000/?x=1"
        );
        let q = t("http://127.0.0.1:3000/hook?key=k");
        assert_eq!(
            q.url_for("/a", "b=2&c=%20"),
            "http://127.0.0.1:3000/hook/a?key=k&b=2&c=%20"
        );
        assert_eq!(q.url_for("", ""), "http://127.0.0.1:3000/hook?key=k");
    }

    #[test]
    fn raw_paths_are_not_reencoded() {
        let u = t("http://h:1/x").url_for("/a%2Fb/%E2%9C%93", "q=%26");
        assert_eq!(u, "http://h:1/x/a%2Fb/%E2%9C%93?q=%26");
        assert!(u.parse::<Uri>().is_ok());
    }

    #[test]
    fn host_and_port() {
        let x = t("https://example.test/h");
        assert_eq!(
            (x.host.as_str(), x.port, x.authority.as_str()),
            ("example.test", 443, "example.test")
        );
        let y = t("http://[::1]:8080");
        assert_eq!((y.host.as_str(), y.port), ("::1", 8080));
        assert_eq!(y.origin(), "http://[::1]:8080");
    }

    #[test]
    fn rejects_what_is_not_a_url() {
        for bad in [
            "localhost:3000",
            "127.0.0.1:3000/hook",
            "ftp://h/x",
            "/hook",
            "",
        ] {
            let e = Target::parse(bad).unwrap_err();
            assert!(e.starts_with("--target must be"), "{bad}: {e}");
        }
    }
}
