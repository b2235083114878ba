//! How registries are named in credential files and helpers: `host[:port]` everywhere, except
//! Docker Hub, which is spelled `docker.io`, `index.docker.io`, `registry-1.docker.io` or
//! `https://index.docker.io/v1/` depending on who wrote the file.

/// The key Docker uses for Docker Hub in `config.json` and with helpers.
pub const DOCKER_HUB_SERVER: &str = "https://index.docker.io/v1/";

/// A key without its surrounding space and `https://` or `http://`: the host, then any path.
pub fn without_scheme(key: &str) -> &str {
    let key = key.trim();
    key.strip_prefix("https://").or_else(|| key.strip_prefix("http://")).unwrap_or(key)
}

/// `https://r.example:5000/v2/` → `r.example:5000`; every Docker Hub spelling → `index.docker.io`.
pub fn normalise_host(key: &str) -> String {
    let without_scheme = without_scheme(key);
    let host = without_scheme.split('/').next().unwrap_or(without_scheme).to_ascii_lowercase();
    match host.as_str() {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "index.docker.io".to_string()
        }
        _ => host,
    }
}

/// The server string Docker passes to helpers and uses as a `config.json` key for a host:
/// `https://index.docker.io/v1/` for Docker Hub, the host itself otherwise.
pub fn helper_server(host: &str) -> String {
    let host = normalise_host(host);
    if host == "index.docker.io" { DOCKER_HUB_SERVER.to_string() } else { host }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_has_one_name() {
        for key in ["docker.io", "index.docker.io", "https://index.docker.io/v1/", "registry-1.docker.io"] {
            assert_eq!(normalise_host(key), "index.docker.io", "{key}");
            assert_eq!(helper_server(key), DOCKER_HUB_SERVER, "{key}");
        }
        assert_eq!(normalise_host("https://R.example:5000/v2/"), "r.example:5000");
        assert_eq!(helper_server("ghcr.io"), "ghcr.io");
    }
}
