//! Reading an image's configuration (its entrypoint and command) from a
//! registry, through the OCI distribution API (`/v2/`), anonymously: how lab
//! learns how to start an image it runs on a cluster without pulling it.

use serde_json::Value;

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// A reference's registry host, repository path and tag or digest; `None`
/// for a name with no registry host (Docker Hub's, which lab cannot reach here).
pub fn parts(reference: &str) -> Option<(String, String, String)> {
    let (host, rest) = reference.split_once('/')?;
    if !(host.contains('.') || host.contains(':') || host == "localhost") {
        return None;
    }
    if let Some((path, digest)) = rest.split_once('@') {
        return Some((host.to_string(), path.to_string(), digest.to_string()));
    }
    let (repo, tag) = super::split_ref(rest);
    Some((host.to_string(), repo, tag))
}

async fn get(client: &reqwest::Client, url: &str, accept: &str) -> Result<Value, String> {
    let resp = client.get(url).header("Accept", accept).send().await.map_err(|e| format!("GET {url}: {e}"))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("GET {url}: {status}"));
    }
    resp.json().await.map_err(|e| format!("GET {url}: not JSON: {e}"))
}

/// The image's entrypoint and command, as its configuration says them.
pub async fn image_command(reference: &str) -> Result<(Vec<String>, Vec<String>), String> {
    let (host, repo, tag) = parts(reference).ok_or_else(|| format!("{reference} names no registry host (e.g. registry.example:5000/{reference})"))?;
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build().map_err(|e| e.to_string())?;
    // Plain HTTP only on this machine's loopback, as container engines do.
    let loopback = host.starts_with("127.") || host.starts_with("localhost") || host.starts_with("[::1]");
    let base = format!("{}://{host}/v2/{repo}", if loopback { "http" } else { "https" });
    let mut manifest = get(&client, &format!("{base}/manifests/{tag}"), ACCEPT).await?;
    if let Some(list) = manifest["manifests"].as_array() {
        // An index: the linux/amd64 image, else the first.
        let pick = list.iter().find(|m| m["platform"]["os"] == "linux" && m["platform"]["architecture"] == "amd64").or(list.first()).ok_or_else(|| format!("{reference}: an empty image index"))?;
        let digest = pick["digest"].as_str().unwrap_or_default();
        manifest = get(&client, &format!("{base}/manifests/{digest}"), ACCEPT).await?;
    }
    let config = manifest["config"]["digest"].as_str().ok_or_else(|| format!("{reference}: its manifest names no configuration"))?;
    let blob = get(&client, &format!("{base}/blobs/{config}"), "application/json").await?;
    let list = |v: &Value| -> Vec<String> { v.as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default() };
    Ok((list(&blob["config"]["Entrypoint"]), list(&blob["config"]["Cmd"])))
}

#[cfg(test)]
mod tests {
    #[test]
    fn references_split_into_host_repository_and_tag() {
        assert_eq!(super::parts("127.0.0.1:5000/me/app:v1"), Some(("127.0.0.1:5000".into(), "me/app".into(), "v1".into())));
        assert_eq!(super::parts("reg.example/app"), Some(("reg.example".into(), "app".into(), "latest".into())));
        assert_eq!(super::parts("reg.example/app@sha256:ab"), Some(("reg.example".into(), "app".into(), "sha256:ab".into())));
        assert_eq!(super::parts("me/app:v1"), None);
    }
}
